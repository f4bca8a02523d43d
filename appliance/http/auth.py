"""Client authentication: ``Authorization: Bearer TOKEN`` ↔ exactly one job."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import abort, current_app, jsonify, request

from appliance.jobs import Job

SLATE = "slate"


def appliance() -> Any:
    return current_app.extensions[SLATE]


def fail(status: int, message: str, hint: str | None = None) -> NoReturn:
    body: dict[str, str] = {"error": message}
    if hint:
        body["hint"] = hint
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="slate"'
    abort(response)


def client_job(*, allow_ended: bool = False) -> Job:
    """The job whose token this request carries; 401 if none, 409 if it has ended."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        fail(401, "missing job token", "send 'Authorization: Bearer TOKEN' (slate.token)")
    job = appliance().jobs.find_by_token(token)
    if job is None:
        fail(401, "unknown or wrong job token", "boot the machine again to get a fresh token")
    if not job.active and not allow_ended:
        fail(409, f"job {job.id} has ended ({job.state})", "nothing more to do for this job")
    return job
