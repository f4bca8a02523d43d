"""The impure side of a boot decision: gather facts, record the boot, act on the spec.

``facts_for`` only reads (the DHCP hook may call it on every DISCOVER); ``plan_boot``
is called when a machine fetches its boot script and records what happened: the
machine in ``seen``, its firmware, a pending job moving to ``booting``, the job a
standing reboot-and-restore rule creates.
"""

from __future__ import annotations

import json
import logging

from appliance import audit
from appliance.boot.decide import BootSpec, HostFacts, JobFacts, Machine, decide
from appliance.errors import Conflict, SlateError
from appliance.jobs import Jobs, queries

log = logging.getLogger(__name__)
AUTO_ACTOR = "auto-restore"


def facts_for(jobs: Jobs, machine: Machine, unknown_policy: str) -> HostFacts:
    host = jobs.inventory.find_host(machine.mac)
    if host is None:
        return HostFacts(known=False, unknown_policy=unknown_policy)
    job = jobs.due_for(host.mac)
    last = queries.last_of_host(jobs.conn, host.mac)
    fresh = (
        last is not None
        and last["action"] == "restore"
        and last["state"] == "done"
        and not json.loads(last["options"]).get("booted_after")
    )
    return HostFacts(
        known=True,
        name=host.name,
        job=JobFacts(job.id, job.action, jobs.token(job.id)) if job else None,
        auto_restore=jobs.inventory.auto_restore_for(host),
        fresh_restore=fresh,
        unknown_policy=unknown_policy,
    )


def plan_boot(jobs: Jobs, machine: Machine, unknown_policy: str) -> BootSpec | None:
    """Decide what ``machine`` boots now, and record it."""
    jobs.inventory.record_seen(
        machine.mac, machine.firmware, machine.arch, machine.uuid or "", machine.ip or ""
    )
    jobs.inventory.note_firmware(machine.mac, machine.firmware)
    facts = facts_for(jobs, machine, unknown_policy)
    spec = decide(machine, facts)
    if spec is not None and spec.kind == "auto-restore" and spec.image:
        spec = _auto_restore(jobs, machine, spec, unknown_policy)
    if spec is not None and spec.kind == "local" and facts.fresh_restore:
        _mark_booted_after(jobs, machine.mac)
    if spec is not None and spec.kind == "env" and spec.job is not None:
        job = jobs.get(spec.job.id)
        if job.state == "pending":
            jobs.transition(job.id, "booting")
    _timeline(jobs, machine, spec, facts.known)
    return spec


def _timeline(jobs: Jobs, machine: Machine, spec: BootSpec | None, known: bool) -> None:
    """What was decided, on the machine's timeline: a job, the local disk, or unknown."""
    from appliance.machines import timeline

    if not known:
        decision, what = "unknown", f"unknown machine ({spec.kind if spec else 'no answer'})"
    elif spec is not None and spec.job is not None:
        decision, what = "job", f"job {spec.job.id} ({spec.job.action})"
    elif spec is not None and spec.kind == "local":
        decision, what = "local", "the local disk"
    else:
        decision = what = spec.kind if spec is not None else "no answer"
    job = spec.job.id if spec is not None and spec.job is not None else None
    timeline.record(
        jobs.conn,
        machine.mac,
        "boot-script",
        f"boot script: {what}",
        job=job,
        decision=decision,
        firmware=machine.firmware,
        address=machine.ip or "",
    )


def _auto_restore(
    jobs: Jobs, machine: Machine, spec: BootSpec, unknown_policy: str
) -> BootSpec | None:
    """Create the restore job a standing rule asks for; on failure boot the local disk."""
    assert spec.image is not None
    transport = jobs.inventory.auto_transport_for(jobs.inventory.get_host(machine.mac))
    try:
        job = jobs.restore(
            machine.mac, spec.image, actor=AUTO_ACTOR, options={"transport": transport}
        )
    except Conflict:
        # A concurrent request for this boot (an iPXE retry) created it first.
        return decide(machine, facts_for(jobs, machine, unknown_policy))
    except SlateError as exc:
        # A rule naming a deleted image must not keep a classroom from booting.
        log.warning("auto-restore of %s for %s not started: %s", spec.image, spec.name, exc)
        audit.record(jobs.conn, AUTO_ACTOR, "job.restore.refused", spec.name, exc.message)
        return BootSpec("local", machine.mac, spec.name)
    how = "" if transport == "auto" else f" (transport {transport})"
    jobs.log(job.id, [f"created by the standing rule 'restore {spec.image} at every boot'{how}"])
    return decide(machine, facts_for(jobs, machine, unknown_policy))


def _mark_booted_after(jobs: Jobs, mac: str) -> None:
    last = queries.last_of_host(jobs.conn, mac)
    if last is not None:
        jobs.mark_booted_after(last["id"])
