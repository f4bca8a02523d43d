"""The per-machine timeline: the last events of each machine's boots, in SQLite.

What a technician asks first when a machine "did nothing": did it get a DHCP offer
(which firmware, which address), which file it fetched by TFTP, what the boot script
decided (a job, the local disk, unknown), whether it loaded the boot environment and
called the client API, when the first chunk went out, its phases, and how it ended.

:func:`record` never raises: a timeline is an aid, and must not fail a DHCP answer, a
boot script or a job's move.  It keeps :data:`KEEP` events per machine (older ones are
dropped as new ones come) and :data:`KEEP_MACHINES` machines' worth overall (the PXE
network is hostile: a flood of made-up MACs must not fill the disk).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from appliance.db import transaction
from appliance.machines.queries import mac_with_ip

log = logging.getLogger("slate.timeline")

KEEP = 100  # events per machine
KEEP_MACHINES = 5000  # machines whose timeline is kept (newest first)
KINDS = (
    "dhcp-offer",  # facts: firmware, arch, address, boot file, message (OFFER/ACK)
    "tftp",  # facts: file, address
    "boot-script",  # facts: decision (job / local / register / unknown), job
    "bootenv",  # facts: file (vmlinuz / initrd.img), address
    "client-call",  # the client in the boot environment asked for its job
    "first-chunk",  # the first chunk this job's client fetched
    "phase",  # facts: phase (what the client reports: partitioning, restoring, verifying…)
    "done",
    "failed",  # facts: reason
    "cancelled",  # facts: reason
)
# (database file, job) whose first chunk is recorded (this process): job ids repeat across
# databases (every test, every data directory), so the job alone is not the key.
_first_chunk: set[tuple[str, int]] = set()
_lock = threading.Lock()
_inserts = 0


def record(
    conn: sqlite3.Connection,
    mac: str,
    kind: str,
    detail: str = "",
    *,
    job: int | None = None,
    **facts: Any,
) -> None:
    """Add one event to ``mac``'s timeline (inside the caller's transaction, if any)."""
    if kind not in KINDS:
        raise ValueError(f"unknown timeline event {kind!r}")
    try:
        if conn.in_transaction:
            _insert(conn, mac.lower(), kind, detail, job, facts)
        else:
            with transaction(conn):
                _insert(conn, mac.lower(), kind, detail, job, facts)
    except sqlite3.Error as exc:  # locked for too long, disk full: the boot goes on
        log.warning("timeline of %s: cannot record %s: %s", mac, kind, exc)


def _insert(
    conn: sqlite3.Connection, mac: str, kind: str, detail: str, job: int | None, facts: Any
) -> None:
    global _inserts
    conn.execute(
        "INSERT INTO host_events(mac, kind, job, detail, facts) VALUES (?, ?, ?, ?, ?)",
        (mac, kind, job, detail[:500], json.dumps(facts, sort_keys=True, default=str)),
    )
    conn.execute(
        "DELETE FROM host_events WHERE mac=? AND id <= (SELECT id FROM host_events WHERE mac=?"
        " ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (mac, mac, KEEP),
    )
    with _lock:
        _inserts += 1
        prune = _inserts % 1000 == 0
    if prune:  # now and then: drop the machines heard from least recently
        conn.execute(
            "DELETE FROM host_events WHERE mac IN (SELECT mac FROM host_events GROUP BY mac"
            " ORDER BY MAX(id) DESC LIMIT -1 OFFSET ?)",
            (KEEP_MACHINES,),
        )


def forget(conn: sqlite3.Connection, mac: str) -> None:
    """Drop ``mac``'s timeline (inside the caller's transaction): its host was removed."""
    conn.execute("DELETE FROM host_events WHERE mac=?", (mac.lower(),))


def first_chunk(conn: sqlite3.Connection, mac: str, job: int, digest: str) -> None:
    """Record ``first-chunk`` once per job (the chunk route calls this on every chunk)."""
    key = (str(conn.execute("PRAGMA database_list").fetchone()[2]), job)
    with _lock:
        if key in _first_chunk:
            return
        _first_chunk.add(key)
    record(conn, mac, "first-chunk", f"first chunk {digest[:12]}… to job {job}", job=job)


def bootenv_fetched(conn: sqlite3.Connection, name: str, ip: str | None) -> None:
    """``bootenv``: the machine at ``ip`` is downloading the boot environment's ``name``."""
    mac = mac_for_ip(conn, ip)
    if mac:
        record(conn, mac, "bootenv", f"boot environment {name} to {ip}", file=name, address=ip)


def events(conn: sqlite3.Connection, mac: str, limit: int = KEEP) -> list[dict[str, Any]]:
    """``mac``'s events, oldest first (the newest ``limit``)."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM host_events WHERE mac=? ORDER BY id DESC LIMIT ?)"
        " ORDER BY id",
        (mac.lower(), limit),
    ).fetchall()
    return [
        {
            "at": r["at"],
            "kind": r["kind"],
            "job": r["job"],
            "detail": r["detail"],
            **{"facts": json.loads(r["facts"] or "{}")},
        }
        for r in rows
    ]


def mac_for_ip(conn: sqlite3.Connection, ip: str | None) -> str | None:
    """The MAC behind ``ip`` for the services that see only an address (TFTP, the boot
    environment's download): a bound lease, then the kernel's neighbour table (the
    machine asked for our address by ARP just before), then the host's recorded IP."""
    # lazily: dhcp.leases imports machines.queries, whose package imports this module
    from appliance.dhcp.leases import bound_mac

    if not ip:
        return None
    mac = bound_mac(conn, ip)
    if mac is not None:
        return mac
    mac = _neighbour(ip)
    if mac:
        return mac
    return mac_with_ip(conn, ip)


def _neighbour(ip: str, table: Path = Path("/proc/thread-self/net/arp")) -> str | None:
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # IP address, HW type, Flags, HW address, Mask, Device; flags 0x0 = incomplete
        if len(fields) >= 4 and fields[0] == ip and fields[2] != "0x0":
            mac = fields[3].lower()
            if mac != "00:00:00:00:00:00":
                return mac
    return None
