"""Roomcast: one image version multicast to every seat of a room restoring it, the rest
by HTTP (see docs/roomcast.md).

:class:`Roomcast` is the appliance's registry of sessions: it decides at a seat's join
whether it restores by multicast (``transport`` auto / multicast / unicast), makes one
session per image version, starts its :class:`~appliance.roomcast.sender.Sender`, and
forgets the session when the sender ends it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.imagefmt.manifest import Manifest
from appliance.imagefmt.roomwire import chunk_table
from appliance.roomcast.priority import DEFAULT_NICE, Priority
from appliance.roomcast.session import RoomSession

log = logging.getLogger("slate.roomcast")

DEFAULT_GROUP = "239.255.83.0/24"  # administratively scoped (RFC 2365), TTL 1
DEFAULT_PORT = 5483
DEFAULT_RATE = 900_000_000  # bit/s: 90 % of 1 GbE when the link's speed is unknown


def parse_rate(text: str) -> int:
    """``900M``, ``1G``, ``40m``, ``250000000`` (bit/s) → bit/s; ``auto``/"" → 0."""
    t = text.strip().lower().removesuffix("bit/s").removesuffix("bps")
    if t in ("", "auto", "0"):
        return 0
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:], 1)
    number = float(t[:-1] if scale != 1 else t)
    if not 1_000_000 <= number * scale <= 100_000_000_000:
        raise ValueError("the rate must be between 1M and 100G bit/s")
    return int(number * scale)


def parse_group(text: str) -> str:
    """A multicast CIDR the sessions' groups are taken from (239.0.0.0/8 by default)."""
    net = ipaddress.IPv4Network(text.strip(), strict=False)
    if not net.is_multicast:
        raise ValueError(f"{net} is not a multicast range (224.0.0.0/4; use 239.x)")
    if net.num_addresses < 1 or net.network_address in ipaddress.IPv4Network("224.0.0.0/24"):
        raise ValueError(f"{net} holds link-local control groups (224.0.0.x)")
    return str(net)


def link_rate(address: str) -> int:
    """90 % of the speed of the interface holding ``address`` (sysfs), else the default."""
    import json
    import subprocess

    try:
        out = subprocess.run(
            ["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True
        ).stdout
        for link in json.loads(out or "[]"):
            if any(a.get("local") == address for a in link.get("addr_info", [])):
                speed = int(Path(f"/sys/class/net/{link['ifname']}/speed").read_text())
                if speed > 0:
                    return int(speed * 1_000_000 * 0.9)
    except (OSError, ValueError, subprocess.CalledProcessError, KeyError):
        pass
    return DEFAULT_RATE


STATUS_DIR = "roomcast"  # in the data directory: one JSON file per session


def read_status(home: Path, max_age: float = 3600.0) -> list[dict[str, Any]]:
    """The sessions' status files (written each second by their senders; the newest
    first), those updated in the last ``max_age`` seconds."""
    import json

    found = []
    for path in (home / STATUS_DIR).glob("*.json"):
        try:
            age = time.time() - path.stat().st_mtime
            if age <= max_age:
                found.append({**json.loads(path.read_text()), "updated_ago": round(age, 1)})
        except (OSError, ValueError):
            continue  # being replaced, or removed by a newer session's clean-up
    return sorted(found, key=lambda s: s["updated_ago"])


class Roomcast:
    def __init__(
        self,
        address: str,
        chunk_path: Callable[[str], Path],
        connect: Callable[[], sqlite3.Connection],
        *,
        group: str = DEFAULT_GROUP,
        port: int = DEFAULT_PORT,
        rate: int = 0,
        status_dir: Path | None = None,
        query_interval: float = 60.0,
        nice: int = DEFAULT_NICE,
    ) -> None:
        self.address = address
        self.priority = Priority(nice)  # raised while any session runs (see .priority)
        self.status_dir = status_dir  # where each session's status is kept, for the CLI
        self.query_interval = query_interval
        self._querier: Any = None
        self.chunk_path = chunk_path
        self.connect = connect  # this thread's database connection
        self.groups = ipaddress.IPv4Network(group)
        self.port = port
        self._rate = rate
        self._lock = threading.Lock()
        self._sessions: dict[int, RoomSession] = {}
        self._by_version: dict[tuple[str, str], RoomSession] = {}
        self._senders: dict[int, Any] = {}
        self._next_group = 0
        self._expected_cache: dict[tuple[str, str], tuple[float, frozenset[int]]] = {}

    @property
    def rate(self) -> int:
        if not self._rate:
            self._rate = link_rate(self.address)
        return self._rate

    # -- joining --------------------------------------------------------------------------
    def wants_multicast(self, transport: str, image: str, version: str) -> str:
        """ "" when this seat should join the session of ``image@version``, else why not."""
        if transport == "unicast":
            return "the job asks for HTTP (--transport unicast)"
        if transport == "multicast":
            return ""
        with self._lock:
            if (image, version) in self._by_version:
                return ""
        if self.restoring(image, version) >= 2:
            return ""
        return "it is the only machine restoring this version (auto: multicast from 2)"

    def restoring(self, image: str, version: str) -> int:
        """Machines with an active, not-unicast restore job of this version."""
        row = (
            self.connect()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE action='restore' AND image=? AND version=?"
                " AND state IN ('pending','booting','running','verifying')"
                " AND COALESCE(json_extract(options, '$.transport'), 'auto') != 'unicast'",
                (image, version),
            )
            .fetchone()
        )
        return int(row[0])

    def expected(self, image: str, version: str) -> frozenset[int]:
        """Jobs that will join this version's session: active, due, not unicast
        (cached 1 s).  The session leaves out those that have joined already: a machine
        that has called in but not joined yet (it is still checking its disk) counts."""
        key = (image, version)
        now = time.monotonic()
        with self._lock:
            cached = self._expected_cache.get(key)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        rows = (
            self.connect()
            .execute(
                "SELECT id FROM jobs WHERE action='restore' AND image=? AND version=?"
                " AND state IN ('pending','booting','running')"
                " AND (not_before IS NULL OR not_before <= strftime('%Y-%m-%dT%H:%M:%SZ','now'))"
                " AND COALESCE(json_extract(options, '$.transport'), 'auto') != 'unicast'",
                key,
            )
            .fetchall()
        )
        ids = frozenset(int(r[0]) for r in rows)
        with self._lock:
            self._expected_cache[key] = (now, ids)
        return ids

    def session_for(self, manifest: Manifest) -> RoomSession:
        """The live session of this version, made (and its sender started) if none."""
        from appliance.roomcast.sender import Sender

        key = (manifest.image, manifest.version)
        with self._lock:
            session = self._by_version.get(key)
            if session is not None and not session.ended:
                return session
            sid = secrets.randbits(32) or 1
            n = self.groups.num_addresses  # .0 of the range is skipped where there is room
            group = self.groups[self._next_group % (n - 1) + 1 if n > 1 else 0]
            self._next_group += 1
            session = RoomSession(
                sid,
                manifest.image,
                manifest.version,
                chunk_table(manifest),
                group=str(group),
                port=self.port,
                rate=self.rate,
                expected=lambda: self.expected(*key),
            )
            sender = Sender(
                session,
                self.address,
                self.chunk_path,
                on_end=self._ended,
                status_file=self.status_dir / f"{sid:08x}.json" if self.status_dir else None,
            )
            self._sessions[sid] = session
            self._by_version[key] = session
            self._senders[sid] = sender
            start_querier = self._querier is None and self.query_interval > 0
            if start_querier:
                from appliance.roomcast.igmp import Querier

                self._querier = Querier(self.address, self.query_interval)
        if start_querier:
            self._querier.start()
        self._prune_status()
        self.priority.acquire()
        sender.start()
        return session

    def _prune_status(self, keep: float = 7 * 86400.0) -> None:
        """Drop the status files of sessions that ended more than ``keep`` s ago."""
        if self.status_dir is None:
            return
        for path in self.status_dir.glob("*.json"):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > keep:
                    path.unlink()

    def session(self, sid: int) -> RoomSession | None:
        with self._lock:
            session = self._sessions.get(sid)
        return None if session is None or session.ended else session

    def sessions(self) -> list[RoomSession]:
        with self._lock:
            return [s for s in self._sessions.values() if not s.ended]

    def _ended(self, session: RoomSession) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
            if self._senders.pop(session.id, None) is not None:
                self.priority.release()
            key = (session.image, session.version)
            if self._by_version.get(key) is session:
                del self._by_version[key]

    def stop(self) -> None:
        with self._lock:
            senders = list(self._senders.values())
            querier, self._querier = self._querier, None
        for sender in senders:
            sender.stop()
        if querier is not None:
            querier.stop()
