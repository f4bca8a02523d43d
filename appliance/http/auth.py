"""Client authentication: ``Authorization: Bearer TOKEN`` ↔ exactly one job, bound to
the address of its first call (see :mod:`appliance.jobs.scope`, docs/security.md)."""

from __future__ import annotations

import logging
from typing import NoReturn

from flask import abort, current_app, jsonify, request

from appliance.http.context import HttpContext
from appliance.jobs import Job
from appliance.jobs import scope as jobscope

SLATE = "slate"
log = logging.getLogger(__name__)


def appliance() -> HttpContext:
    """The app's :class:`~appliance.http.context.HttpContext`."""
    context: HttpContext = current_app.extensions[SLATE]
    return context


def fail(status: int, message: str, hint: str | None = None) -> NoReturn:
    body: dict[str, str] = {"error": message}
    if hint:
        body["hint"] = hint
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="slate"'
    abort(response)


def client_job(*, allow_ended: bool = False, bind: bool = False) -> Job:
    """The job whose token this request carries: 401 if none, 409 if it has ended (a
    token ends with its job), 403 from an address other than the one it is bound to.
    ``bind``: this call (the client's ``GET /job``) binds an unbound token to its
    address; before that first ``/job`` a token is not bound to any address."""
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
    address = request.remote_addr or "?"
    conn = appliance().db()
    bound = jobscope.bound_address(conn, job.id)
    if bound is None and bind:
        bound = jobscope.bind(conn, job.id, address)
    if bound is not None and bound != address:
        if jobscope.refuse(conn, job.id, address):
            line = (
                f"WARNING: refused {request.method} {request.path[:200]} from {address}: this"
                f" job's token is bound to {bound}, the machine that first called in"
            )
            appliance().jobs.log(job.id, [line])
            log.warning("job %s: %s", job.id, line)
        fail(
            403,
            f"job {job.id} belongs to the machine at {bound}",
            "a token works only from the address that first used it; retry the job",
        )
    return job
