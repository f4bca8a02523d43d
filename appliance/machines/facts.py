"""Hardware facts of machines, their identity by SMBIOS UUID, the disk health each job
read, and power requests for machines waiting in the boot environment.

Identity: a host is keyed by its MAC, but a MAC can move (the shared USB network
adapter of a laptop cart).  The first facts a host reports pin its SMBIOS UUID; after
that, a job whose machine reports another UUID, or a UUID pinned to another host, is
failed before anything is written (:class:`IdentityMismatch`), and the stored facts are
left as they were.  ``slate host forget-uuid NAME`` unpins (a replaced mainboard).
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

from appliance import audit
from appliance.db import transaction
from appliance.errors import Conflict, UsageError
from appliance.jobs import queries
from appliance.machines.diskhealth import Verdict
from appliance.machines.inventory import Inventory
from appliance.timestamps import utc_now

POWER_COMMANDS = ("reboot", "poweroff")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A client waiting in the boot environment polls every POLL_EVERY s; it counts as
# waiting while its last poll is younger than WAITING_FOR s.
POLL_EVERY = 5
WAITING_FOR = 60
PLACEHOLDER_UUIDS = frozenset(
    {
        "",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",
    }
)


class IdentityMismatch(Conflict):
    """The machine that booted with a host's MAC is another machine."""


def uuid_of(facts: dict[str, Any]) -> str:
    """The SMBIOS UUID that identifies the machine, or "" (absent, a placeholder, or
    not a UUID at all, e.g. dmidecode's "Not Settable"): then the MAC alone does."""
    value = str(facts.get("system_uuid") or "").strip().lower()
    if not _UUID.match(value) or value in PLACEHOLDER_UUIDS:
        return ""
    return value


def _words(facts: dict[str, Any]) -> str:
    """Every string in the facts, lower case, for the search box."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value:
            out.append(value.lower())

    walk(facts)
    return " ".join(out)[:8000]


def check_identity(conn: sqlite3.Connection, mac: str, name: str, uuid: str) -> None:
    """Raise IdentityMismatch if a machine with SMBIOS ``uuid`` may not be host ``mac``."""
    if not uuid:
        return  # no usable UUID: the MAC alone identifies it, as before
    row = conn.execute("SELECT uuid FROM host_facts WHERE mac=?", (mac,)).fetchone()
    pinned = row[0] if row else ""
    other = conn.execute(
        "SELECT h.name FROM host_facts f JOIN hosts h ON h.mac=f.mac WHERE f.uuid=? AND f.mac<>?",
        (uuid, mac),
    ).fetchone()
    if pinned and pinned != uuid:
        also = f" (that UUID is host {other[0]})" if other else ""
        raise IdentityMismatch(
            f"the machine that booted with {name}'s MAC {mac} has SMBIOS UUID {uuid}{also},"
            f" but {name} is the machine with UUID {pinned}: nothing was written to it",
            hint="a network adapter moved between machines? Boot each machine with its own"
            f" adapter; if {name}'s mainboard was replaced, `slate host forget-uuid {name}`",
        )
    if other:
        raise IdentityMismatch(
            f"the machine that booted with {name}'s MAC {mac} has SMBIOS UUID {uuid}, which is"
            f" host {other[0]}: nothing was written to it",
            hint=f"a network adapter moved between machines? Start the job for {other[0]},"
            f" or `slate host forget-uuid {other[0]}` if that is really a new machine",
        )


def record_facts(conn: sqlite3.Connection, job: Any, facts: dict[str, Any]) -> str:
    """Check the identity, then store ``facts`` for ``job``'s host; returns the UUID."""
    uuid = uuid_of(facts)
    check_identity(conn, job.host, job.host_name, uuid)
    serial = str(facts.get("system_serial") or "")[:128]
    body = json.dumps(facts, sort_keys=True)
    with transaction(conn):
        conn.execute(
            "INSERT INTO host_facts(mac, uuid, serial, facts, search, job, reported_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(mac) DO UPDATE SET"
            " uuid=CASE WHEN excluded.uuid<>'' THEN excluded.uuid ELSE host_facts.uuid END,"
            " serial=excluded.serial, facts=excluded.facts, search=excluded.search,"
            " job=excluded.job, reported_at=excluded.reported_at",
            (job.host, uuid, serial, body, _words(facts), job.id, utc_now()),
        )
    return uuid


def facts_of(conn: sqlite3.Connection, mac: str) -> dict[str, Any] | None:
    """{"uuid", "serial", "facts", "job", "reported_at"} of a host, or None."""
    row = conn.execute(
        "SELECT uuid, serial, facts, job, reported_at FROM host_facts WHERE mac=?", (mac,)
    ).fetchone()
    if row is None:
        return None
    return {
        "uuid": row[0],
        "serial": row[1],
        "facts": json.loads(row[2] or "{}"),
        "job": row[3],
        "reported_at": row[4],
    }


def matching_macs(conn: sqlite3.Connection, text: str) -> set[str]:
    """MACs whose facts mention ``text`` (a serial, a UUID, a model, a CPU…)."""
    needle = text.strip().lower()
    if not needle:
        return set()
    rows = conn.execute(
        "SELECT mac FROM host_facts WHERE instr(search, ?) > 0 OR instr(uuid, ?) > 0",
        (needle, needle),
    ).fetchall()
    return {r[0] for r in rows}


def search_hosts(conn: sqlite3.Connection, hosts: list[Any], text: str) -> list[Any]:
    """The hosts whose name, MAC, room or hardware facts mention ``text``."""
    needle = text.strip().lower()
    if not needle:
        return hosts
    by_facts = matching_macs(conn, needle)
    return [
        h
        for h in hosts
        if h.mac in by_facts
        or needle in h.name.lower()
        or needle in h.mac
        or needle in (h.room or "").lower()
    ]


def forget_uuid(conn: sqlite3.Connection, host_ref: str, *, actor: str) -> str:
    """Unpin a host's SMBIOS UUID (its mainboard was replaced); returns the old one."""
    host = Inventory(conn).get_host(host_ref)
    row = conn.execute("SELECT uuid FROM host_facts WHERE mac=?", (host.mac,)).fetchone()
    old = row[0] if row else ""
    with transaction(conn):
        conn.execute("UPDATE host_facts SET uuid='' WHERE mac=?", (host.mac,))
        audit.record(conn, actor, "host.forget-uuid", host.name, old or "(none)")
    return old


# -- disk health ----------------------------------------------------------------------
def record_health(
    conn: sqlite3.Connection, job_id: int, verdicts: list[Verdict], *, ignored: bool
) -> None:
    with transaction(conn):
        for v in verdicts:
            status = "ignored" if ignored and v.status == "refused" else v.status
            facts = {**v.facts, "reasons": list(v.reasons)}
            conn.execute(
                "INSERT INTO disk_health(job, path, status, facts) VALUES (?, ?, ?, ?)",
                (job_id, v.path, status, json.dumps(facts, sort_keys=True)),
            )


def health_of_host(conn: sqlite3.Connection, mac: str) -> list[dict[str, Any]]:
    """The disk health the host's latest job that read any reported."""
    job = queries.last_disk_health_job(conn, mac)
    if job is None:
        return []
    rows = conn.execute(
        "SELECT job, path, status, facts, at FROM disk_health WHERE job=? ORDER BY id", (job,)
    ).fetchall()
    return [
        {"job": r[0], "path": r[1], "status": r[2], "facts": json.loads(r[3]), "at": r[4]}
        for r in rows
    ]


# -- power ----------------------------------------------------------------------------
def note_poll(conn: sqlite3.Connection, job_id: int) -> str | None:
    """The client of ``job_id`` asks for a power request: record the poll, hand out (once)
    the request waiting for it."""
    now = utc_now()
    with transaction(conn):
        conn.execute(
            "INSERT INTO power_polls(job, at) VALUES (?, ?)"
            " ON CONFLICT(job) DO UPDATE SET at=excluded.at",
            (job_id, now),
        )
        row = conn.execute(
            "SELECT command FROM power_requests WHERE job=? AND taken_at IS NULL", (job_id,)
        ).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE power_requests SET taken_at=? WHERE job=?", (now, job_id))
    return str(row[0])


def waiting_job(conn: sqlite3.Connection, mac: str, now: datetime | None = None) -> int | None:
    """The job whose client is waiting in the boot environment on host ``mac``, if any."""
    poll = queries.last_power_poll(conn, mac)
    if poll is None:
        return None
    job, polled = poll
    at = datetime.strptime(polled, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if ((now or datetime.now(UTC)) - at).total_seconds() > WAITING_FOR:
        return None
    return job


def request_power(conn: sqlite3.Connection, host_ref: str, command: str, *, actor: str) -> int:
    """Ask the machine waiting in the boot environment to reboot or power off; returns
    its job.  Conflict when the machine is not waiting there (Slate cannot reach a
    machine running its own system)."""
    if command not in POWER_COMMANDS:
        raise UsageError(f"{command!r} is not a power command", hint="reboot or poweroff")
    host = Inventory(conn).get_host(host_ref)
    job = waiting_job(conn, host.mac)
    if job is None:
        raise Conflict(
            f"{host.name} is not waiting in Slate's boot environment (its client has not"
            f" called in for {WAITING_FOR} s)",
            hint="Slate can reboot or power off only a machine sitting in its boot environment"
            " after a register job, a refused disk or a failed job; a machine running its own"
            " system needs its own agent (docs/operations.md)",
        )
    with transaction(conn):
        conn.execute(
            "INSERT INTO power_requests(job, command, actor, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(job) DO UPDATE SET command=excluded.command, actor=excluded.actor,"
            " at=excluded.at, taken_at=NULL",
            (job, command, actor, utc_now()),
        )
        audit.record(conn, actor, f"host.{command}", host.name, f"job {job}")
    return job


def power_state(conn: sqlite3.Connection, mac: str) -> dict[str, Any]:
    """What the console shows: is the machine waiting, and the last request."""
    job = waiting_job(conn, mac)
    row = queries.last_power_request(conn, mac)
    last = None
    if row is not None:
        last = {"job": row[0], "command": row[1], "actor": row[2], "at": row[3], "taken_at": row[4]}
    return {"waiting_job": job, "last_request": last}


def request_power_room(
    conn: sqlite3.Connection, room: str, command: str, *, actor: str
) -> dict[str, Any]:
    """``command`` for every machine of ``room`` waiting in the boot environment:
    ``{"requested": [{"host", "job"}], "not_waiting": [host names]}``.  Conflict when
    none of them waits."""
    if command not in POWER_COMMANDS:
        raise UsageError(f"{command!r} is not a power command", hint="reboot or poweroff")
    hosts = Inventory(conn).hosts(room)  # NotFound for an unknown room
    requested, idle = [], []
    for host in hosts:
        if waiting_job(conn, host.mac) is None:
            idle.append(host.name)
        else:
            requested.append(
                {"host": host.name, "job": request_power(conn, host.mac, command, actor=actor)}
            )
    if not requested:
        raise Conflict(
            f"no machine of room {room} is waiting in Slate's boot environment",
            hint="Slate reaches only machines sitting in its boot environment (after a register"
            " job, a refused disk or a failed job); see docs/operations.md",
        )
    return {"requested": requested, "not_waiting": idle}
