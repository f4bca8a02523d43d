"""The inventory: known machines (hosts), rooms, and machines seen booting.

A host is keyed by its MAC address, stored lower-case with colons.  A machine that
network-boots without being a host is only *recorded* (table ``seen``): nothing is ever
written to it.  Standing "restore IMAGE[@VERSION] at every network boot" rules live on
hosts and rooms (``auto_restore``); the host's rule overrides its room's.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from appliance import audit
from appliance.db import transaction
from appliance.errors import Conflict, NotFound, UsageError
from appliance.formats.names import is_image_name, is_version
from appliance.machines import timeline
from appliance.refs import check_spec

_HEX12 = re.compile(r"^[0-9a-f]{12}$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAC_HINT = "write a MAC address as aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff"


def normalize_mac(text: str) -> str:
    """``text`` in any common MAC notation → ``aa:bb:cc:dd:ee:ff``; UsageError if not a MAC."""
    raw = text.strip().lower()
    groups = re.split(r"[:.\-]", raw)
    sizes = {len(g) for g in groups}
    shaped = (
        (len(groups) == 6 and sizes <= {1, 2})  # aa:bb:.. (also a:b:.. from some tools)
        or (len(groups) == 3 and sizes == {4})  # aabb.ccdd.eeff (Cisco)
        or (len(groups) == 1 and sizes == {12})  # aabbccddeeff
    )
    hexed = "".join(g.zfill(2) if len(groups) == 6 else g for g in groups)
    if not shaped or not _HEX12.match(hexed):
        raise UsageError(f"{text!r} is not a MAC address", hint=MAC_HINT)
    return ":".join(hexed[i : i + 2] for i in range(0, 12, 2))


def check_host_name(name: str) -> str:
    if not _HOST_NAME.match(name):
        raise UsageError(
            f"{name!r} is not a valid host name",
            hint="use letters, digits, '.', '_' or '-' (up to 63), starting with a letter or digit",
        )
    return name


def _check_ip(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as exc:
        raise UsageError(
            f"{text!r} is not an IPv4 address", hint="e.g. 10.0.0.21, or '' for none"
        ) from exc


def parse_disk_hint(text: str) -> dict[str, str]:
    """``serial=S1, size=500G`` → ``{"serial": "S1", "size": "500G"}``."""
    hints: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(
                f"disk hint {part!r} is not KEY=VALUE",
                hint="e.g. --disk-hint serial=S3Z9NB0K, or wwn=0x5002538e4, or size=512G",
            )
        hints[key.strip()] = value.strip()
    return hints


# How a standing rule's restores get their chunks, as `slate job restore --transport`.
RULE_TRANSPORTS = ("auto", "multicast", "unicast")


def check_transport(transport: str) -> str:
    if transport not in RULE_TRANSPORTS:
        raise UsageError(
            f"transport {transport!r} is not known",
            hint="one of auto (multicast from two machines), multicast, unicast",
        )
    return transport


# A room's standing "when done" for its machines' restore jobs (None = no setting: a job
# reboots unless it says otherwise), as `slate job restore --after`.
ROOM_AFTER = ("reboot", "poweroff")


def check_room_after(after: str | None) -> str | None:
    """``reboot``/``poweroff`` → itself; ``None``/``""``/``none`` → None (no setting)."""
    if after is None or after.strip().lower() in ("", "none"):
        return None
    if after not in ROOM_AFTER:
        raise UsageError(
            f"'when done' {after!r} is not known",
            hint="reboot (into the restored system), poweroff (shut down), or none (no room"
            " setting: each job reboots unless started with --after poweroff)",
        )
    return after


def _rule_detail(spec: str | None, transport: str) -> str:
    """The audit detail of a rule change: the image, and the transport when not auto."""
    if not spec:
        return ""
    return spec if transport == "auto" else f"{spec} (transport {transport})"


def parse_image_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME@VERSION`` → (name, version or None); UsageError if malformed."""
    name, _, version = spec.partition("@")
    if not is_image_name(name) or (version and not is_version(version)):
        raise UsageError(
            f"{spec!r} is not an image reference",
            hint="write NAME (latest version) or NAME@VERSION, e.g. win11@20261125T162431Z",
        )
    return name, version or None


@dataclass(frozen=True)
class Host:
    mac: str
    name: str
    room: str | None
    ip: str | None
    disk_hint: str
    auto_restore: str | None
    firmware: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Room:
    name: str
    note: str
    auto_restore: str | None
    hosts: int
    after: str | None = None  # when done: reboot | poweroff | None (no room setting)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Seen:
    mac: str
    firmware: str
    arch: int | None
    uuid: str
    ip: str
    first_seen: str
    last_seen: str
    boots: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _host(row: sqlite3.Row) -> Host:
    return Host(**{k: row[k] for k in Host.__dataclass_fields__})


def _room(row: sqlite3.Row) -> Room:
    return Room(row["name"], row["note"], row["auto_restore"], row["hosts"], row["when_done"])


class Inventory:
    """Hosts, rooms and seen machines in one database connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- hosts -------------------------------------------------------------------------
    def add_host(
        self,
        mac: str,
        name: str,
        *,
        actor: str,
        room: str | None = None,
        ip: str | None = None,
        disk_hint: str = "",
        auto_restore: str | None = None,
    ) -> Host:
        with transaction(self.conn):
            host = self._insert_host(mac, name, room, ip, disk_hint, auto_restore)
            audit.record(self.conn, actor, "host.add", host.name, host.mac)
        return host

    def _insert_host(
        self,
        mac: str,
        name: str,
        room: str | None,
        ip: str | None,
        disk_hint: str,
        auto_restore: str | None,
    ) -> Host:
        mac = normalize_mac(mac)
        check_host_name(name)
        parse_disk_hint(disk_hint)  # refuse a hint no job could use
        if auto_restore:
            check_spec(auto_restore)  # resolved at each boot (appliance.refs)
        clash = self.conn.execute(
            "SELECT mac, name FROM hosts WHERE mac=? OR name=?", (mac, name)
        ).fetchone()
        if clash:
            what = f"MAC {mac}" if clash["mac"] == mac else f"name {name!r}"
            raise Conflict(
                f"{what} is already registered (host {clash['name']}, {clash['mac']})",
                hint="remove it first with `slate host rm`, or pick another name",
            )
        if room:
            self._ensure_room(room)
        firmware = self.conn.execute("SELECT firmware FROM seen WHERE mac=?", (mac,)).fetchone()
        self.conn.execute(
            "INSERT INTO hosts(mac, name, room, ip, disk_hint, auto_restore, firmware)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mac, name, room, ip, disk_hint, auto_restore, firmware[0] if firmware else ""),
        )
        return self.get_host(mac)

    def get_host(self, ref: str) -> Host:
        """A host by name or MAC (any notation)."""
        host = self.find_host(ref)
        if host is None:
            raise NotFound(
                f"no host named or with MAC {ref!r}",
                hint="see `slate host list`; add it with `slate host add MAC --name NAME`",
            )
        return host

    def find_host(self, ref: str) -> Host | None:
        row = self.conn.execute("SELECT * FROM hosts WHERE name=?", (ref,)).fetchone()
        if row is None:
            try:
                mac = normalize_mac(ref)
            except UsageError:
                return None
            row = self.conn.execute("SELECT * FROM hosts WHERE mac=?", (mac,)).fetchone()
        return _host(row) if row else None

    def hosts(self, room: str | None = None) -> list[Host]:
        if room is not None:
            self.get_room(room)
            rows = self.conn.execute("SELECT * FROM hosts WHERE room=? ORDER BY name", (room,))
        else:
            rows = self.conn.execute("SELECT * FROM hosts ORDER BY name")
        return [_host(r) for r in rows.fetchall()]

    def remove_host(self, ref: str, *, actor: str) -> Host:
        from appliance.jobs.queries import active_on_host  # appliance.jobs imports this module

        host = self.get_host(ref)
        busy = active_on_host(self.conn, host.mac)
        if busy:
            raise Conflict(
                f"host {host.name} has an active job ({busy['id']}, {busy['state']})",
                hint=f"cancel it first: `slate job cancel {busy['id']}`",
            )
        with transaction(self.conn):
            self.conn.execute("DELETE FROM hosts WHERE mac=?", (host.mac,))
            timeline.forget(self.conn, host.mac)  # a machine added again starts afresh
            audit.record(self.conn, actor, "host.rm", host.name, host.mac)
        return host

    def update_host(
        self,
        ref: str,
        *,
        actor: str,
        name: str | None = None,
        room: str | None = None,
        ip: str | None = None,
        disk_hint: str | None = None,
    ) -> Host:
        """Change a registered machine: ``None`` keeps a field, ``""`` clears the room,
        the fixed address or the disk hint.  Jobs already created keep what they were
        created with (their disk hint is copied into the job)."""
        host = self.get_host(ref)
        changes: dict[str, str | None] = {}
        if name is not None and name != host.name:
            check_host_name(name)
            clash = self.conn.execute("SELECT mac FROM hosts WHERE name=?", (name,)).fetchone()
            if clash:
                raise Conflict(
                    f"name {name!r} is already used by {clash['mac']}",
                    hint="pick another name, or rename that machine first",
                )
            changes["name"] = name
        if room is not None and (room or None) != host.room:
            changes["room"] = room.strip() or None
        if ip is not None and (ip or None) != host.ip:
            changes["ip"] = _check_ip(ip.strip()) if ip.strip() else None
        if disk_hint is not None and disk_hint.strip() != host.disk_hint:
            parse_disk_hint(disk_hint)  # refuse a hint no job could use
            changes["disk_hint"] = disk_hint.strip()
        if not changes:
            return host
        with transaction(self.conn):
            if changes.get("room"):
                self._ensure_room(str(changes["room"]))
            sets = ", ".join(f"{k}=?" for k in changes)
            # Column names come from the fixed keys above; every value is bound.
            sql = f"UPDATE hosts SET {sets} WHERE mac=?"  # noqa: S608
            self.conn.execute(sql, (*changes.values(), host.mac))
            detail = ", ".join(f"{k}={v or '-'}" for k, v in changes.items())
            audit.record(self.conn, actor, "host.edit", host.name, detail)
        return self.get_host(host.mac)

    def set_host_auto_restore(
        self, ref: str, spec: str | None, *, actor: str, transport: str = "auto"
    ) -> Host:
        host = self.get_host(ref)
        if spec:
            check_spec(spec)  # resolved at each boot (appliance.refs)
        check_transport(transport)
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE hosts SET auto_restore=?, auto_transport=? WHERE mac=?",
                (spec, transport, host.mac),
            )
            audit.record(
                self.conn, actor, "host.auto_restore", host.name, _rule_detail(spec, transport)
            )
        return self.get_host(host.mac)

    def note_firmware(self, mac: str, firmware: str) -> None:
        if firmware:
            self.conn.execute("UPDATE hosts SET firmware=? WHERE mac=?", (firmware, mac))

    def import_csv(self, text: str, *, actor: str) -> list[Host]:
        """Add every host of a CSV (columns mac,name,room[,ip]); all or nothing."""
        rows = _parse_csv(text)
        added: list[Host] = []
        errors: list[str] = []
        with transaction(self.conn):
            for line, fields in rows:
                try:
                    added.append(self._insert_host(*fields, disk_hint="", auto_restore=None))
                except (UsageError, Conflict) as exc:
                    errors.append(f"line {line}: {exc.message}")
            if errors:
                raise UsageError(
                    "nothing imported: " + "; ".join(errors),
                    hint="fix these lines (columns: mac,name,room[,ip]) and import again",
                )
            audit.record(self.conn, actor, "host.import", "", f"{len(added)} hosts")
        return added

    # -- rooms -------------------------------------------------------------------------
    def _ensure_room(self, name: str) -> None:
        check_host_name(name)
        self.conn.execute("INSERT OR IGNORE INTO rooms(name) VALUES (?)", (name,))

    def add_room(
        self, name: str, *, actor: str, note: str = "", auto_restore: str | None = None
    ) -> Room:
        check_host_name(name)
        if auto_restore:
            check_spec(auto_restore)  # resolved at each boot (appliance.refs)
        with transaction(self.conn):
            if self.conn.execute("SELECT 1 FROM rooms WHERE name=?", (name,)).fetchone():
                raise Conflict(f"room {name!r} exists already", hint="see `slate room list`")
            self.conn.execute(
                "INSERT INTO rooms(name, note, auto_restore) VALUES (?, ?, ?)",
                (name, note, auto_restore),
            )
            audit.record(self.conn, actor, "room.add", name, note)
        return self.get_room(name)

    def get_room(self, name: str) -> Room:
        row = self.conn.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM hosts h WHERE h.room=r.name) AS hosts"
            " FROM rooms r WHERE name=?",
            (name,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no room named {name!r}", hint="see `slate room list`")
        return _room(row)

    def rooms(self) -> list[Room]:
        rows = self.conn.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM hosts h WHERE h.room=r.name) AS hosts"
            " FROM rooms r ORDER BY name"
        ).fetchall()
        return [_room(r) for r in rows]

    def set_room_after(self, name: str, after: str | None, *, actor: str) -> Room:
        """The room's standing "when done" for the restore jobs of its machines that do
        not choose one themselves (``None`` removes it: they reboot)."""
        self.get_room(name)
        after = check_room_after(after)
        with transaction(self.conn):
            self.conn.execute("UPDATE rooms SET when_done=? WHERE name=?", (after, name))
            audit.record(self.conn, actor, "room.after", name, after or "none")
        return self.get_room(name)

    def room_after_for(self, host: Host) -> str | None:
        """The "when done" of ``host``'s room, or None (no room, or no setting)."""
        if not host.room:
            return None
        row = self.conn.execute("SELECT when_done FROM rooms WHERE name=?", (host.room,)).fetchone()
        return str(row[0]) if row and row[0] else None

    def set_room_auto_restore(
        self, name: str, spec: str | None, *, actor: str, transport: str = "auto"
    ) -> Room:
        self.get_room(name)
        if spec:
            check_spec(spec)  # resolved at each boot (appliance.refs)
        check_transport(transport)
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE rooms SET auto_restore=?, auto_transport=? WHERE name=?",
                (spec, transport, name),
            )
            audit.record(self.conn, actor, "room.auto_restore", name, _rule_detail(spec, transport))
        return self.get_room(name)

    def auto_transport_for(self, host: Host) -> str:
        """The transport of the standing rule that applies to ``host`` (auto when none)."""
        if host.auto_restore:
            row = self.conn.execute(
                "SELECT auto_transport FROM hosts WHERE mac=?", (host.mac,)
            ).fetchone()
        elif host.room:
            row = self.conn.execute(
                "SELECT auto_transport FROM rooms WHERE name=?", (host.room,)
            ).fetchone()
        else:
            row = None
        return str(row[0]) if row and row[0] else "auto"

    def auto_restore_for(self, host: Host) -> str | None:
        """The standing restore rule that applies to ``host``: its own, else its room's."""
        if host.auto_restore:
            return host.auto_restore
        if host.room:
            row = self.conn.execute(
                "SELECT auto_restore FROM rooms WHERE name=?", (host.room,)
            ).fetchone()
            return row[0] if row else None
        return None

    # -- seen --------------------------------------------------------------------------
    def record_seen(
        self, mac: str, firmware: str = "", arch: int | None = None, uuid: str = "", ip: str = ""
    ) -> Seen:
        """Note that ``mac`` network-booted (first/last seen, boot count)."""
        mac = normalize_mac(mac)
        self.conn.execute(
            "INSERT INTO seen(mac, firmware, arch, uuid, ip) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(mac) DO UPDATE SET"
            " firmware=CASE WHEN excluded.firmware='' THEN firmware ELSE excluded.firmware END,"
            " arch=COALESCE(excluded.arch, arch),"
            " uuid=CASE WHEN excluded.uuid='' THEN uuid ELSE excluded.uuid END,"
            " ip=CASE WHEN excluded.ip='' THEN ip ELSE excluded.ip END,"
            " last_seen=strftime('%Y-%m-%dT%H:%M:%SZ','now'), boots=boots+1",
            (mac, firmware, arch, uuid, ip),
        )
        row = self.conn.execute("SELECT * FROM seen WHERE mac=?", (mac,)).fetchone()
        return Seen(**{k: row[k] for k in Seen.__dataclass_fields__})

    def seen(self, *, include_known: bool = False) -> list[Seen]:
        """Machines that booted; by default only those that are not registered hosts."""
        where = "" if include_known else " WHERE mac NOT IN (SELECT mac FROM hosts)"
        sql = f"SELECT * FROM seen{where} ORDER BY last_seen DESC"  # noqa: S608 (fixed text)
        rows = self.conn.execute(sql).fetchall()
        return [Seen(**{k: r[k] for k in Seen.__dataclass_fields__}) for r in rows]


def _parse_csv(text: str) -> list[tuple[int, tuple[str, str, str | None, str | None]]]:
    """(line number, (mac, name, room, ip)) per data row; a header row is skipped."""
    out: list[tuple[int, tuple[str, str, str | None, str | None]]] = []
    bad: list[str] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if n == 1 and cells[0].lower() == "mac":
            continue
        if len(cells) not in (3, 4) or not cells[0] or not cells[1]:
            bad.append(f"line {n}: expected mac,name,room[,ip], got {len(cells)} columns")
            continue
        ip = cells[3] if len(cells) == 4 and cells[3] else None
        out.append((n, (cells[0], cells[1], cells[2] or None, ip)))
    if bad:
        raise UsageError(
            "nothing imported: " + "; ".join(bad),
            hint="each line needs mac,name,room and optionally ip",
        )
    return out
