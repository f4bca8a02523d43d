"""Live updates as server-sent events: the dashboard's job table, or one job and its log.

The stream polls the database once a second and sends an event only when something
changed (plus a keep-alive comment), and ends after a few minutes: the browser's
EventSource reconnects by itself, so no request lives forever in a server thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, request, stream_with_context

from webui import backend
from webui.api import bp
from webui.security import require

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0


def snapshot(job_id: int | None) -> tuple[str, dict[str, Any]]:
    if job_id is None:
        return "jobs", {"active": backend.active_jobs(), "ended": backend.ended_jobs(10)}
    jobs = backend.slate().jobs
    job = backend.job_dict(jobs.get(job_id))
    return "job", {"job": job, "log": jobs.log_lines(job_id, 500)}


def _stream(job_id: int | None) -> Iterator[str]:
    yield "retry: 2000\n\n"
    last, quiet_since = "", time.monotonic()
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        kind, data = snapshot(job_id)
        text = json.dumps(data, sort_keys=True, default=str)
        if text != last:
            last, quiet_since = text, time.monotonic()
            yield f"event: {kind}\ndata: {text}\n\n"
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        time.sleep(POLL_SECONDS)


@bp.get("/events")
@require("view")
def events() -> Response:
    job_id = request.args.get("job", type=int)
    if job_id is not None:
        backend.slate().jobs.get(job_id)  # 404 now rather than inside the stream
    return Response(
        stream_with_context(_stream(job_id)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
