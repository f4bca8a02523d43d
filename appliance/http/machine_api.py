"""Client API calls about the machine itself (issue 14): its hardware facts (and identity
by SMBIOS UUID), its disks' health before a write, and power requests while it waits in
the boot environment.  Shapes: docs/client-api.md; decisions: appliance.machines.diskhealth and
appliance.machine_facts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from appliance.http.auth import appliance, client_job, fail
from appliance.http.body import client_object
from appliance.machines import diskhealth
from appliance.machines import facts as machine_facts
from appliance.machines import power as machine_power
from appliance.notify import outbox

bp = Blueprint("machine_api", __name__, url_prefix="/api/client/v1")
MAX_DISKS = 64


def limits() -> tuple[int, int]:
    """(max reallocated, max pending) from ``slate serve``'s settings."""
    settings = appliance().settings
    return settings.disk_max_reallocated, settings.disk_max_pending


@bp.post("/facts")
def post_facts() -> Response:
    """The machine's hardware facts; 409 (and the job failed) when the machine is not
    the host its MAC belongs to."""
    job = client_job()
    facts = client_object().get("facts")
    if not isinstance(facts, dict):
        fail(400, "'facts' must be a JSON object", 'send {"facts": {...}}')
    conn = appliance().db()
    try:
        uuid = machine_facts.record_facts(conn, job, facts)
    except machine_facts.IdentityMismatch as exc:
        reason = f"{exc.message} (hint: {exc.hint})"
        appliance().jobs.log(job.id, [f"REFUSED: {exc.message}"])
        appliance().jobs.failed(job.id, reason)
        fail(409, exc.message, exc.hint)
    appliance().jobs.log(job.id, [f"hardware facts stored (SMBIOS UUID {uuid or 'none'})"])
    return jsonify({"ok": True, "uuid": uuid})


@bp.post("/health")
def post_health() -> Response:
    """The disks' health as the client read it; the answer says whether to write.  A
    refused disk fails the job here, with the facts in its log and a disk-refused
    notification, unless the job ignores disk health."""
    job = client_job()
    disks = client_object().get("disks")
    if not isinstance(disks, list) or len(disks) > MAX_DISKS:
        fail(400, f"'disks' must be a list of at most {MAX_DISKS} health records")
    max_reallocated, max_pending = limits()
    verdicts = diskhealth.judge_all(disks, max_reallocated=max_reallocated, max_pending=max_pending)
    ignored = bool(job.options.get("ignore_disk_health"))
    conn = appliance().db()
    machine_facts.record_health(conn, job.id, verdicts, ignored=ignored)
    appliance().jobs.log(job.id, [v.line() for v in verdicts])
    reason = diskhealth.refusal(verdicts)
    answer: dict[str, Any] = {"verdicts": [v.to_dict() for v in verdicts], "refused": None}
    if reason and ignored:
        appliance().jobs.log(job.id, [f"WARNING: {reason}; written anyway (--ignore-disk-health)"])
    elif reason:
        appliance().jobs.log(job.id, [f"REFUSED: {reason}"])
        ended = appliance().jobs.failed(job.id, f"{reason} (hint: {diskhealth.REFUSAL_HINT})")
        bad = [v.to_dict() for v in verdicts if v.status == "refused"]
        outbox.disk_refused(conn, ended, {"disks": bad, "reason": reason})
        answer.update(refused=reason, hint=diskhealth.REFUSAL_HINT)
    return jsonify(answer)


@bp.get("/power")
def get_power() -> Response:
    """A machine waiting in the boot environment after its job asks what to do:
    ``{"command": "reboot" | "poweroff" | null, "poll": seconds}``.  Allowed after the
    job has ended (that is when the machine waits), from the job's own address only."""
    job = client_job(allow_ended=True)
    command = machine_power.note_poll(appliance().db(), job.id)
    if command:
        appliance().jobs.log(job.id, [f"power request handed to the machine: {command}"])
    return jsonify({"command": command, "poll": machine_power.POLL_EVERY})
