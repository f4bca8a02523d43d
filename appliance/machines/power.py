"""Power: Wake-on-LAN to start a machine, and reboot / power-off requests to a machine
waiting in Slate's boot environment (its client polls for them).

Wake-on-LAN is a real magic packet (6 bytes 0xff, then the MAC 16 times) over UDP.

The target is a setting, ``ADDRESS[:PORT]``: the console's ``SLATE_WOL_TARGET`` config,
else the environment variable ``SLATE_WOL_TARGET``, else ``settings.wol_target`` (the
flag ``--wol-target``); without one, the broadcast address of the interface the
appliance serves (``settings.interface``), port 9.  A test sets it to a loopback address
or a namespace's address to receive the packet.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from appliance import audit
from appliance.db import transaction
from appliance.errors import Conflict, UsageError
from appliance.jobs import queries
from appliance.machines.inventory import Inventory, normalize_mac
from appliance.settings import Settings
from appliance.timestamps import utc_now

DEFAULT_PORT = 9

POWER_COMMANDS = ("reboot", "poweroff")
# A client waiting in the boot environment polls every POLL_EVERY s; it counts as
# waiting while its last poll is younger than WAITING_FOR s.
POLL_EVERY = 5
WAITING_FOR = 60


def magic_packet(mac: str) -> bytes:
    return b"\xff" * 6 + bytes.fromhex(normalize_mac(mac).replace(":", "")) * 16


def interface_broadcast(interface: str) -> str:
    """The IPv4 broadcast address of ``interface`` (from ``ip -j addr``)."""
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
        check=False,
    )
    for link in json.loads(out.stdout or "[]"):
        for addr in link.get("addr_info", []):
            if addr.get("broadcast"):
                return str(addr["broadcast"])
            if "local" in addr and "prefixlen" in addr:
                net = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network
                return str(net.broadcast_address)
    raise UsageError(
        f"interface {interface!r} has no IPv4 address to send Wake-on-LAN from",
        hint="set the console's Wake-on-LAN target (SLATE_WOL_TARGET=ADDRESS[:PORT])",
    )


def target(config: Mapping[str, Any], settings: Settings | None) -> tuple[str, int]:
    configured = str(
        config.get("SLATE_WOL_TARGET")
        or os.environ.get("SLATE_WOL_TARGET")  # a process without settings (the console's tests)
        or (settings.wol_target if settings is not None else "")
    )
    if configured:
        host, _, port = configured.rpartition(":") if ":" in configured else (configured, "", "")
        return host, int(port or DEFAULT_PORT)
    if settings is not None and settings.interface:
        return interface_broadcast(settings.interface), DEFAULT_PORT
    return "255.255.255.255", DEFAULT_PORT


def wake(macs: list[str], address: str, port: int) -> int:
    """Send one magic packet per MAC; returns how many were sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for mac in macs:
            sock.sendto(magic_packet(mac), (address, port))
    return len(macs)


def waker(settings: Settings | None) -> Callable[[Sequence[str]], int]:
    """``wake(macs)`` with the target of ``settings`` (the appliance's own sender)."""

    def send(macs: Sequence[str]) -> int:
        address, port = target({}, settings)
        return wake(list(macs), address, port)

    return send


# -- requests to a machine waiting in the boot environment ------------------------------
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
