"""Roomcast's control plane in the client API: a seat joins its version's room session
with the chunks it still needs, reports about once a second (its job's progress
rides on the report: no /progress meanwhile), and leaves.  The data
plane is multicast (:mod:`appliance.roomcast.sender`); see docs/roomcast.md."""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, Response, jsonify, request

from appliance.errors import SlateError
from appliance.formats.roomwire import MAX_PIECES, chunk_table, decode_bitmap, encode_bitmap
from appliance.http.auth import appliance, client_job, fail
from appliance.http.body import client_object
from appliance.http.client_api import progress_allowed, record_progress
from appliance.jobs import Job
from appliance.notify.events import Event
from appliance.notify.outbox import record_event
from appliance.roomcast.session import STAT_KEYS, RoomSession
from appliance.timestamps import utc_now

bp = Blueprint("room_api", __name__, url_prefix="/api/client/v1/room")
MAX_PARTIAL = 4096  # chunks a seat may hold in part in one report
MAX_WHY = 300


def _restore_job() -> Job:
    job = client_job()
    if job.action != "restore" or not job.image or not job.version:
        fail(403, f"job {job.id} is a {job.action} job: only restores join a room session")
    return job


def _need(data: dict[str, Any], count: int) -> set[int]:
    try:
        return decode_bitmap(data.get("need"), count)
    except ValueError as exc:
        fail(400, f"'need': {exc}", "send the bitmap of chunks still needed (base64)")


def _session(job: Job, data: dict[str, Any]) -> RoomSession:
    sid = data.get("session")
    if not isinstance(sid, int) or isinstance(sid, bool):
        fail(400, "'session' must be the session number the join answered")
    session = appliance().roomcast.session(sid)
    if session is None:
        fail(404, f"no roomcast session {sid}", "join again, or finish by HTTP")
    if job.id not in session.seats or (session.image, session.version) != (job.image, job.version):
        fail(403, f"roomcast session {sid} is not job {job.id}'s")
    return session


def _stats(data: dict[str, Any]) -> dict[str, float]:
    raw = data.get("stats") or {}
    if not isinstance(raw, dict):
        fail(400, "'stats' must be an object of numbers")
    try:
        return {k: float(raw[k]) for k in STAT_KEYS if k in raw}
    except (TypeError, ValueError):
        fail(400, "'stats' must be an object of numbers")


@bp.post("/join")
def join() -> Response:
    job = _restore_job()
    data = client_object()
    app = appliance()
    assert job.image and job.version
    transport = str(job.options.get("transport") or "auto")
    why = app.roomcast.wants_multicast(transport, job.image, job.version)
    if why:
        return jsonify({"transport": "unicast", "why": why})
    try:
        manifest = app.manifest(job.image, job.version)
    except SlateError as exc:
        fail(404, exc.message, exc.hint)
    # The join is checked before a session (and its sender) is started for it.
    count = len(chunk_table(manifest))
    if data.get("chunks") != count:
        fail(400, f"'chunks' must be {count}, the size of the version's chunk table")
    need = _need(data, count)
    session = app.roomcast.session_for(manifest)
    address = str(request.remote_addr or "")
    answer = session.join(job.id, job.host_name, address, need, forced=transport == "multicast")
    app.jobs.log(
        job.id,
        [
            f"roomcast: joined session {session.id:08x} ({session.group}:{session.port},"
            f" {session.rate / 1e6:.0f} Mbit/s), needing {len(need)} of {session.chunks} chunks"
        ],
    )
    return jsonify(answer)


@bp.post("/report")
def report() -> Response:
    job = _restore_job()
    data = client_object()
    session = _session(job, data)
    need = _need(data, session.chunks)
    raw = data.get("partial") or {}
    if not isinstance(raw, dict) or len(raw) > MAX_PARTIAL:
        fail(400, f"'partial' must map at most {MAX_PARTIAL} chunk indices to lost pieces")
    partial: dict[int, frozenset[int]] = {}
    for key, lost in raw.items():
        if not str(key).isdigit() or int(key) >= session.chunks:
            fail(400, f"'partial': {str(key)[:20]!r} is not a chunk index of this session")
        if not isinstance(lost, list) or len(lost) > MAX_PIECES:
            fail(400, "'partial' values must be lists of piece numbers")
        if not all(isinstance(p, int) and 0 <= p < MAX_PIECES for p in lost):
            fail(400, "'partial' values must be lists of piece numbers")
        partial[int(key)] = frozenset(lost)
    catch = data.get("catch")
    if catch is not None and not isinstance(catch, int | float):
        fail(400, "'catch' must be a number")
    seen = data.get("seen")
    if seen is not None and (not isinstance(seen, int) or isinstance(seen, bool) or seen < 0):
        fail(400, "'seen' must be the data counter of the last beacon read (an integer >= 0)")
    forgers = data.get("forgers") or []
    if not isinstance(forgers, list) or not all(
        isinstance(a, str) and _is_address(a) for a in forgers
    ):
        fail(400, "'forgers' must be a list of IPv4 addresses (where forged datagrams came from)")
    progress = data.get("progress")
    if progress is not None:
        if not isinstance(progress, dict):
            fail(400, "'progress' must be an object: phase, done, total, rate, eta")
        if progress_allowed(job.id):  # a loss storm's reports: the job's row not each time
            record_progress(job, progress)
    try:
        share = session.report(
            job.id,
            need,
            partial,
            http_only=bool(data.get("http_only")),
            why=str(data.get("why") or "")[:MAX_WHY],
            stats=_stats(data),
            catch=None if catch is None else float(catch),
            seen=seen,
            forgers=forgers,
        )
    except KeyError:
        fail(403, f"job {job.id} has left roomcast session {session.id}")
    if forgers and session.first_forgery():
        _notify_forgery(session, job, forgers)
    return jsonify({"state": "active", "http": encode_bitmap(share, session.chunks)})


def _notify_forgery(session: RoomSession, job: Job, forgers: list[str]) -> None:
    """Once a session: "forged traffic on the imaging VLAN" to whoever wants to know
    (``slate notify``), and a line in the reporting seat's job log."""
    details = {
        "session": f"{session.id:08x}",
        "image": session.image,
        "version": session.version,
        "reported_by": job.host_name,
        "sources": forgers,
        "what": "datagrams on the room's multicast group without the session's key;"
        " the seats dropped them (none was believed)",
    }
    app = appliance()
    record_event(app.db(), Event("forged-traffic", ", ".join(forgers), utc_now(), details))
    app.jobs.log(job.id, [f"roomcast: forged datagrams on the group from {', '.join(forgers)}"])


def _is_address(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


@bp.post("/leave")
def leave() -> Response:
    job = _restore_job()
    data = client_object()
    session = _session(job, data)
    session.leave(job.id, _stats(data))
    return jsonify({"ok": True})
