"""The reads on ``hosts``, ``rooms`` and ``host_events`` that other modules need: plain
functions over a connection.

Every SQL statement on the ``hosts``, ``rooms`` and ``host_events`` tables lives in
:mod:`appliance.machines`: this module, :class:`~appliance.machines.inventory.Inventory`
(hosts, rooms, machines seen) and :mod:`~appliance.machines.timeline` (host events).
The exceptions are the schema (:mod:`appliance.db`) and job queries of
:mod:`appliance.jobs` that join ``hosts``.
"""

from __future__ import annotations

import sqlite3


def mac_with_ip(conn: sqlite3.Connection, ip: str) -> str | None:
    """The MAC of the host whose fixed address is ``ip``, or None."""
    row = conn.execute("SELECT mac FROM hosts WHERE ip=?", (ip,)).fetchone()
    return str(row[0]) if row else None


def reserved_ip(conn: sqlite3.Connection, mac: str) -> str | None:
    """The fixed address of host ``mac`` (as stored), or None when it has none."""
    row = conn.execute(
        "SELECT ip FROM hosts WHERE mac = ? AND ip IS NOT NULL AND ip != ''", (mac,)
    ).fetchone()
    return str(row[0]) if row else None


def fixed_addresses(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, address) of every host with a fixed address."""
    rows = conn.execute("SELECT name, ip FROM hosts WHERE ip IS NOT NULL AND ip != ''")
    return [(str(r[0]), str(r[1])) for r in rows.fetchall()]


def name_of(conn: sqlite3.Connection, mac: str | None) -> str | None:
    """The name of host ``mac``, or None (no MAC, or not a host)."""
    if mac is None:
        return None
    row = conn.execute("SELECT name FROM hosts WHERE mac=?", (mac,)).fetchone()
    return str(row[0]) if row else None


def names_by_mac(conn: sqlite3.Connection) -> dict[str, str]:
    """{MAC: name} of every host."""
    return {str(r[0]): str(r[1]) for r in conn.execute("SELECT mac, name FROM hosts")}


def room_of(conn: sqlite3.Connection, mac: str) -> str | None:
    """The room of host ``mac``, or None (no room, or not a host)."""
    row = conn.execute("SELECT room FROM hosts WHERE mac=?", (mac,)).fetchone()
    return str(row[0]) if row and row[0] else None


def host_rules(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(host name, image reference) of every host with a standing restore rule."""
    rows = conn.execute("SELECT name, auto_restore FROM hosts WHERE auto_restore IS NOT NULL")
    return [(str(r[0]), str(r[1])) for r in rows.fetchall()]


def room_rules(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(room name, image reference) of every room with a standing restore rule."""
    rows = conn.execute("SELECT name, auto_restore FROM rooms WHERE auto_restore IS NOT NULL")
    return [(str(r[0]), str(r[1])) for r in rows.fetchall()]
