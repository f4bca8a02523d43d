"""Jobs: list, show, log, preview a reimage, start (restore/capture), cancel, retry."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from appliance.errors import UsageError
from webui import backend
from webui.api import body, bp, field
from webui.security import actor, require


@bp.get("/jobs")
@require("view")
def list_jobs() -> Any:
    if request.args.get("all") in ("1", "true", "yes"):
        return jsonify(backend.all_jobs(500, host=request.args.get("host") or None))
    return jsonify(backend.active_jobs())


@bp.get("/jobs/<int:job_id>")
@require("view")
def get_job(job_id: int) -> Any:
    return jsonify(backend.job_dict(backend.slate().jobs.get(job_id)))


@bp.get("/jobs/<int:job_id>/log")
@require("view")
def job_log(job_id: int) -> Any:
    a = backend.slate()
    a.jobs.get(job_id)
    return jsonify(a.jobs.log_lines(job_id))


@bp.post("/reimage/preview")
@require("job.start")
def preview() -> Any:
    data = body()
    hosts = [str(h) for h in data.get("hosts") or []]
    return jsonify(backend.targets(hosts, data.get("room") or None))


@bp.post("/jobs")
@require("job.start")
def start_job() -> Any:
    data = body()
    action = field(data, "action")
    if action == "restore":
        jobs = backend.start_restore(
            [str(h) for h in data.get("hosts") or []],
            data.get("room") or None,
            field(data, "image"),
            str(data.get("at") or ""),
            actor(),
            options=_after(data),
        )
    elif action == "capture":
        note = str(data.get("note") or "")
        capture = backend.slate().jobs.capture
        jobs = [capture(field(data, "host"), field(data, "image"), actor=actor(), note=note)]
    else:
        raise UsageError(f"action {action!r} cannot be started here", hint="restore or capture")
    return jsonify([backend.job_dict(j) for j in jobs]), 201


def _after(data: dict[str, Any]) -> dict[str, Any]:
    """``after`` of a restore: reboot or poweroff; absent/null = the room's setting."""
    after = data.get("after")
    if after is None:
        return {}
    if after not in ("reboot", "poweroff"):
        raise UsageError(
            f"'after' {after!r} is not known",
            hint="reboot or poweroff, or leave it out for the room's setting (else reboot)",
        )
    return {"after": after}


@bp.post("/jobs/<int:job_id>/cancel")
@require("job.start")
def cancel_job(job_id: int) -> Any:
    data = request.get_json(silent=True) or {}
    job = backend.slate().jobs.cancel(job_id, actor=actor(), reason=str(data.get("reason", "")))
    return jsonify(backend.job_dict(job))


@bp.post("/jobs/<int:job_id>/retry")
@require("job.start")
def retry_job(job_id: int) -> Any:
    return jsonify(backend.job_dict(backend.slate().jobs.retry(job_id, actor=actor()))), 201
