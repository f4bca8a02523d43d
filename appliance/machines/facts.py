"""Hardware facts of machines, their identity by SMBIOS UUID, the disk health each job
read.  Power requests for machines waiting in the boot environment are power.py's.

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
from typing import Any

from appliance import audit
from appliance.db import transaction
from appliance.errors import Conflict
from appliance.jobs import queries
from appliance.machines.diskhealth import Verdict
from appliance.machines.inventory import Inventory
from appliance.timestamps import utc_now

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
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
