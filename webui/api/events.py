"""Live updates as server-sent events: the dashboard's job table, or one job and its log.

The stream polls the database once a second and sends an event only when something
changed (plus a keep-alive comment), and ends after a few minutes (or at once when the
appliance stops): the browser's EventSource reconnects by itself, so no request lives
forever in a server thread.

Each open stream holds a server thread, so their number is capped (:data:`MAX_STREAMS`):
a hundred open dashboards must not take the threads that serve boot scripts and chunks
(on a shared listener).  Beyond the cap the answer is 503; the page still works, it just
does not update by itself until reloaded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, jsonify, request, stream_with_context

from appliance.http.server import stopping
from webui import backend
from webui.api import bp
from webui.security import require

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
MAX_STREAMS = 16  # of the HTTP server's 64 threads (16 of its own on a console listener)


class _Open:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0


def snapshot(job_id: int | None) -> tuple[str, dict[str, Any]]:
    if job_id is None:
        return "jobs", {"active": backend.active_jobs(), "ended": backend.ended_jobs(10)}
    jobs = backend.slate().jobs
    job = backend.job_dict(jobs.get(job_id))
    return "job", {"job": job, "log": jobs.log_lines(job_id, 500)}


def _stream(job_id: int | None, stop: threading.Event) -> Iterator[str]:
    yield "retry: 2000\n\n"
    last, quiet_since = "", time.monotonic()
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        kind, data = snapshot(job_id)
        text = json.dumps(data, sort_keys=True, default=str)
        if text != last:
            last, quiet_since = text, time.monotonic()
            yield f"event: {kind}\ndata: {text}\n\n"
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        stop.wait(POLL_SECONDS)


@bp.get("/events")
@require("view")
def events() -> Response:
    job_id = request.args.get("job", type=int)
    if job_id is not None:
        backend.slate().jobs.get(job_id)  # 404 now rather than inside the stream
    opened: _Open = current_app.extensions.setdefault("slate.console.streams", _Open())
    with opened.lock:
        if opened.count >= MAX_STREAMS:
            refused = jsonify(
                {
                    "error": f"{MAX_STREAMS} live views are open already",
                    "hint": "close some console tabs, or reload this page to see changes",
                }
            )
            refused.status_code = 503
            refused.headers["Retry-After"] = "30"
            return refused
        opened.count += 1
    resp = Response(
        stream_with_context(_stream(job_id, stopping(current_app))),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

    def closed() -> None:  # the server closes the response when the stream ends or breaks
        with opened.lock:
            opened.count -= 1

    resp.call_on_close(closed)
    return resp
