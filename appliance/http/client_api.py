"""The client API: what the restore/capture client in the boot environment calls.

Every call carries ``Authorization: Bearer TOKEN`` (see :mod:`appliance.http.auth`);
shapes are documented in docs/client-api.md and pinned by tests/unit/test_http_client.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import zstandard
from flask import Blueprint, Response, jsonify, request

from appliance.errors import SlateError
from appliance.http.auth import appliance, client_job, fail
from appliance.imagefmt.manifest import Manifest
from appliance.imagefmt.names import is_digest, manifest_relpath
from appliance.jobs import Job, utc_now

bp = Blueprint("client_api", __name__, url_prefix="/api/client/v1")
MAX_LOG_LINES = 1000
MAX_LOG_LINE = 4096
MAX_HASHES = 100_000


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        fail(400, "the request body must be a JSON object")
    return data


def job_payload(job: Job) -> dict[str, Any]:
    manifest = None
    if job.image and job.version:
        manifest = "/store/" + manifest_relpath(job.image, job.version)
    return {
        "id": job.id,
        "action": job.action,
        "state": job.state,
        "host": {"mac": job.host, "name": job.host_name},
        "image": job.image,
        "version": job.version,
        "manifest": manifest,
        "store": "/store/",
        "options": job.options,
    }


@bp.get("/job")
def get_job() -> Response:
    job = client_job()
    if job.state in ("pending", "booting"):
        job = appliance().jobs.transition(job.id, "running")
    return jsonify(job_payload(job))


@bp.post("/state")
def post_state() -> Response:
    job = client_job()
    state = _body().get("state")
    if state not in ("running", "verifying"):
        fail(400, f"state {state!r} cannot be set here", "send running or verifying")
    job = appliance().jobs.transition(job.id, str(state))
    return jsonify({"id": job.id, "state": job.state})


@bp.post("/progress")
def post_progress() -> Response:
    job = client_job()
    data = _body()
    try:
        eta = data.get("eta")
        appliance().jobs.progress(
            job.id,
            phase=str(data.get("phase", ""))[:64],
            done=int(data.get("done", 0)),
            total=int(data.get("total", 0)),
            rate=float(data.get("rate", 0) or 0),
            eta=None if eta is None else float(eta),
        )
    except (TypeError, ValueError):
        fail(400, "progress needs numbers: done, total, rate, eta")
    return jsonify({"ok": True})


@bp.post("/log")
def post_log() -> Response:
    job = client_job()
    lines = _body().get("lines")
    if not isinstance(lines, list) or len(lines) > MAX_LOG_LINES:
        fail(400, f"'lines' must be a list of at most {MAX_LOG_LINES} strings")
    appliance().jobs.log(job.id, [str(x)[:MAX_LOG_LINE] for x in lines])
    return jsonify({"ok": True})


@bp.post("/done")
def post_done() -> Response:
    job = client_job()
    try:
        verified = int(_body().get("verified_bytes", 0))
    except (TypeError, ValueError):
        fail(400, "verified_bytes must be a number")
    job = appliance().jobs.done(job.id, verified_bytes=verified)
    appliance().end_capture(job.id)
    return jsonify({"id": job.id, "state": job.state})


@bp.post("/failed")
def post_failed() -> Response:
    job = client_job()
    reason = str(_body().get("reason", "") or "the client gave no reason")[:2000]
    job = appliance().jobs.failed(job.id, reason)
    appliance().end_capture(job.id, ok=False)
    return jsonify({"id": job.id, "state": job.state})


def _capture_job() -> Job:
    job = client_job()
    if job.action != "capture" or job.image is None:
        fail(403, f"job {job.id} is a {job.action} job, not a capture")
    return job


@bp.post("/capture/missing")
def capture_missing() -> Response:
    job = _capture_job()
    hashes = _body().get("hashes")
    if not isinstance(hashes, list) or len(hashes) > MAX_HASHES:
        fail(400, f"'hashes' must be a list of at most {MAX_HASHES} chunk names")
    bad = [h for h in hashes if not isinstance(h, str) or not is_digest(h)]
    if bad:
        fail(400, f"not a chunk name: {str(bad[0])[:80]!r}", "sha256 hex, lower case")
    # Through the job's session: the chunks it reuses are pinned before being looked up.
    return jsonify({"missing": appliance().capture_session(job.id).missing(hashes)})


@bp.put("/capture/chunk/<digest>")
def capture_chunk(digest: str) -> Response:
    job = _capture_job()
    if not is_digest(digest):
        fail(400, f"not a chunk name: {digest[:80]!r}", "sha256 hex, lower case")
    frame = request.get_data(cache=False)
    try:
        appliance().capture_session(job.id).put_chunk_frame(digest, frame)
    except zstandard.ZstdError as exc:  # garbage the store did not translate
        appliance().jobs.log(job.id, [f"upload of chunk {digest} refused: not zstd ({exc})"])
        fail(400, f"chunk {digest} upload is not a zstd frame", "send one zstd frame per chunk")
    except SlateError as exc:
        appliance().jobs.log(job.id, [f"upload of chunk {digest} refused: {exc.message}"])
        fail(400, exc.message, exc.hint)
    return jsonify({"ok": True, "digest": digest})


@bp.post("/capture/commit")
def capture_commit() -> Response:
    job = _capture_job()
    app = appliance()
    assert job.image is not None
    try:
        draft = Manifest.from_json(
            request.get_data(cache=False),
            image=job.image,
            version=app.store.new_version_id(job.image),
        )
        draft = replace(
            draft,
            created=draft.created or utc_now(),
            note=draft.note or str(job.options.get("note", "")),
            source=draft.source or f"{job.host_name} ({job.host})",
        )
        manifest = app.capture_session(job.id).commit(draft)
    except SlateError as exc:
        app.jobs.log(job.id, [f"commit refused: {exc.message}"])
        fail(400, exc.message, exc.hint)
    app.jobs.set_result_version(job.id, manifest.version)
    app.jobs.log(job.id, [f"committed {manifest.image}@{manifest.version}"])
    app.end_capture(job.id)
    return jsonify({"image": manifest.image, "version": manifest.version})
