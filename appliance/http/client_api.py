"""The client API: what the restore/capture client in the boot environment calls.

Every call carries ``Authorization: Bearer TOKEN`` (see :mod:`appliance.http.auth`);
shapes are documented in docs/client-api.md and pinned by tests/unit/test_http_client.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import zstandard
from flask import Blueprint, Response, current_app, jsonify, request

from appliance.errors import SlateError
from appliance.formats.manifest import Manifest
from appliance.formats.names import is_digest, manifest_relpath
from appliance.http.auth import appliance, client_job, fail
from appliance.http.body import client_object
from appliance.http.listeners import is_tls_request
from appliance.http.scope import may_name
from appliance.jobs import Job, utc_now
from appliance.jobs import scope as jobscope
from appliance.jobs.states import CLIENT_SET, WAITING
from appliance.machines import identity, timeline

bp = Blueprint("client_api", __name__, url_prefix="/api/client/v1")
MAX_LOG_LINES = 1000
MAX_LOG_LINE = 4096
MAX_HASHES = 100_000
# Caps on what one job's client can make the appliance store or do (docs/security.md).
MAX_JOB_LOG = 20_000  # log lines kept per job; later ones are dropped (one line says so)
PROGRESS_PER_SECOND = 5  # the client sends one a second; more are answered 429
# Request bodies: the app's limit is small (appliance.http.SMALL_BODY); these calls
# raise it for themselves.  Only a chunk upload and a manifest are large.
LARGE_BODY = 128 * 1024 * 1024  # a chunk frame (≤ 64 MiB of data), a manifest
LIST_BODY = 8 * 1024 * 1024  # 100 000 chunk names, 1000 log lines


def _limit(size: int) -> None:
    """Allow this request a body of up to ``size`` bytes (before it is read)."""
    request.max_content_length = size


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
    job = client_job(bind=True)
    timeline.record(appliance().db(), job.host, "client-call", f"client asked for job {job.id}",
                    job=job.id, address=request.remote_addr or "")  # fmt: skip
    if job.state in WAITING:
        job = appliance().jobs.transition(job.id, "running")
    payload = job_payload(job)
    if job.action == "restore" and job.image and job.version:
        # "" = join the version's room session after the disk check; else why not (the
        # client then restores by HTTP alone, as a machine restoring by itself always did).
        transport = str(job.options.get("transport") or "auto")
        payload["roomcast"] = appliance().roomcast.wants_multicast(
            transport, job.image, job.version
        )
        # Host name and kept machine-id for the restored system (appliance/machines/identity.py).
        payload["identity"] = identity.for_restore(
            appliance().db(), job.host, job.host_name, job.image, tls=is_tls_request()
        ).to_dict()
    return jsonify(payload)


@bp.get("/after")
def get_after() -> Response:
    """This restore job's post-restore hooks (image → room → host) and kept partitions;
    only its own (appliance.hooks.for_job; docs/hooks.md)."""
    job = client_job()
    if job.action != "restore":
        fail(403, f"job {job.id} is a {job.action} job: only a restore has hooks")
    from appliance import hooks  # the client API's one caller of it

    return jsonify(hooks.for_job(appliance().db(), job.image, job.host))


@bp.get("/identity/ssh-host-keys")
def get_ssh_host_keys() -> Response:
    """The restoring machine's kept SSH host keys: secrets, so only to its own restore
    job and only over the TLS client channel (docs/identity.md)."""
    job = client_job()
    if job.action != "restore" or not job.image:
        fail(403, f"job {job.id} is a {job.action} job: only a restore gets host keys")
    if not is_tls_request():
        fail(
            403,
            "SSH host keys are secrets: they are handed out only over the TLS client channel",
            "boot the client with an https:// slate.url and the appliance's pinned"
            " certificate; over plain HTTP the client writes fresh keys",
        )
    conn = appliance().db()
    if not identity.image_enabled(conn, job.image):
        fail(403, f"identity is off for image {job.image}", "slate image policy --identity")
    keys = identity.ssh_host_keys(conn, job.host, job.host_name)
    appliance().jobs.log(job.id, [f"SSH host keys ({', '.join(k['kind'] for k in keys)}) "
                                  "handed to the client over TLS"])  # fmt: skip
    return jsonify({"keys": keys})


@bp.post("/state")
def post_state() -> Response:
    job = client_job()
    state = client_object().get("state")
    if state not in CLIENT_SET:
        fail(400, f"state {state!r} cannot be set here", "send " + " or ".join(CLIENT_SET))
    job = appliance().jobs.transition(job.id, str(state))
    return jsonify({"id": job.id, "state": job.state})


@bp.post("/progress")
def post_progress() -> Response:
    job = client_job()
    if not progress_allowed(job.id):
        response = jsonify({"error": f"more than {PROGRESS_PER_SECOND} progress calls a second"})
        response.status_code = 429
        response.headers["Retry-After"] = "1"
        return response
    record_progress(job, client_object())
    return jsonify({"ok": True})


def record_progress(job: Job, data: dict[str, Any]) -> None:
    """A client's progress (phase, done, total, rate, eta) on its job: from /progress, or
    carried by a roomcast seat's report (one request a second less per seat)."""
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


class _Window:
    """Calls per job in the current second (in memory: one process serves the API)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[int, tuple[int, int]] = {}  # job → (second, calls)


def progress_allowed(job_id: int) -> bool:
    window: _Window = current_app.extensions.setdefault("slate.progress_window", _Window())
    now = int(time.monotonic())
    with window.lock:
        if len(window.counts) > 10_000:  # ended jobs' entries
            window.counts = {j: c for j, c in window.counts.items() if c[0] == now}
        second, calls = window.counts.get(job_id, (now, 0))
        calls = calls + 1 if second == now else 1
        window.counts[job_id] = (now, calls)
    return calls <= PROGRESS_PER_SECOND


@bp.post("/log")
def post_log() -> Response:
    _limit(LIST_BODY)
    job = client_job()
    lines = client_object().get("lines")
    if not isinstance(lines, list) or len(lines) > MAX_LOG_LINES:
        fail(400, f"'lines' must be a list of at most {MAX_LOG_LINES} strings")
    room = max(MAX_JOB_LOG - appliance().jobs.log_length(job.id), 0)
    text = [str(x)[:MAX_LOG_LINE] for x in lines[:room]]
    dropped = len(lines) - len(text)
    if dropped and room > 0:
        text[-1] = f"(the client's log reached {MAX_JOB_LOG} lines; later lines are dropped)"
    appliance().jobs.log(job.id, text)
    return jsonify({"ok": True, "dropped": dropped} if dropped else {"ok": True})


@bp.post("/done")
def post_done() -> Response:
    job = client_job()
    try:
        verified = int(client_object().get("verified_bytes", 0))
    except (TypeError, ValueError):
        fail(400, "verified_bytes must be a number")
    if job.action == "capture" and not job.result_version:
        fail(409, f"capture job {job.id} has not committed a version", "commit first, then done")
    job = appliance().jobs.done(job.id, verified_bytes=verified)
    appliance().end_capture(job.id)
    return jsonify({"id": job.id, "state": job.state})


@bp.post("/failed")
def post_failed() -> Response:
    job = client_job()
    reason = str(client_object().get("reason", "") or "the client gave no reason")[:2000]
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
    _limit(LIST_BODY)
    job = _capture_job()
    hashes = client_object().get("hashes")
    if not isinstance(hashes, list) or len(hashes) > MAX_HASHES:
        fail(400, f"'hashes' must be a list of at most {MAX_HASHES} chunk names")
    bad = [h for h in hashes if not isinstance(h, str) or not is_digest(h)]
    if bad:
        fail(400, f"not a chunk name: {str(bad[0])[:80]!r}", "sha256 hex, lower case")
    # Only chunks the job may name are looked up (anything else is "missing": the
    # answer is no oracle for the library), through the job's session, which pins the
    # chunks it reuses before looking.
    wanted = list(dict.fromkeys(hashes))
    allowed = [h for h in wanted if h in may_name(job, wanted)]
    present = set(allowed) - set(appliance().capture_session(job.id).missing(allowed))
    return jsonify({"missing": [h for h in wanted if h not in present]})


@bp.put("/capture/chunk/<digest>")
def capture_chunk(digest: str) -> Response:
    _limit(LARGE_BODY)
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
    # Verified against its name: the client has these bytes, so it may name the chunk.
    jobscope.record_upload(appliance().db(), job.id, digest)
    return jsonify({"ok": True, "digest": digest})


@bp.post("/capture/commit")
def capture_commit() -> Response:
    _limit(LARGE_BODY)
    job = _capture_job()
    body = request.get_data(cache=False)
    # One commit at a time per job, and one version per job: a retried commit (its
    # answer lost on the way) gets the version the first one made.
    with _commit_lock(job.id):
        job = appliance().jobs.get(job.id)
        if job.result_version:
            return jsonify({"image": job.image, "version": job.result_version})
        return _commit(job, body)


_LOCKS_LOCK = threading.Lock()


def _commit_lock(job_id: int) -> threading.Lock:
    locks: dict[int, threading.Lock] = current_app.extensions.setdefault("slate.commit_locks", {})
    with _LOCKS_LOCK:
        return locks.setdefault(job_id, threading.Lock())


def _commit(job: Job, body: bytes) -> Response:
    app = appliance()
    assert job.image is not None
    try:
        draft = Manifest.from_json(
            body, image=job.image, version=app.store.new_version_id(job.image)
        )
        draft = replace(
            draft,
            created=draft.created or utc_now(),
            note=draft.note or str(job.options.get("note", "")),
            source=draft.source or f"{job.host_name} ({job.host})",
        )
        names = draft.digests()
        foreign = sorted(set(names) - may_name(job, names))
        if foreign:
            app.jobs.log(
                job.id,
                [
                    f"WARNING: commit refused: it names {len(foreign)} chunk(s) this job neither"
                    f" uploaded nor may reuse from an earlier version of {job.image},"
                    f" e.g. {foreign[0]}"
                ],
            )
            fail(
                400,
                f"the manifest names {len(foreign)} chunk(s) this job did not upload and"
                f" no earlier version of {job.image} has, e.g. {foreign[0]}",
                "upload every chunk that /capture/missing reports missing, then commit",
            )
        manifest = app.capture_session(job.id).commit(draft)
    except SlateError as exc:
        app.jobs.log(job.id, [f"commit refused: {exc.message}"])
        fail(400, exc.message, exc.hint)
    app.jobs.set_result_version(job.id, manifest.version)
    app.jobs.log(job.id, [f"committed {manifest.image}@{manifest.version}"])
    app.end_capture(job.id)
    return jsonify({"image": manifest.image, "version": manifest.version})
