"""Roomcast: one image version multicast to every seat of a room restoring it, the rest
by HTTP (see docs/roomcast.md).

:class:`Roomcast` is the appliance's registry of sessions: it decides at a seat's join
whether it restores by multicast (``transport`` auto / multicast / unicast), makes one
session per image version, starts its :class:`~appliance.roomcast.sender.Sender`, and
forgets the session when the sender ends it.  The sessions in use at once share one
multicast budget (:mod:`.budget`: equal shares, stepping down when a session starts and
back up when one ends or has no seat listening any more), and while any runs, chunks
served by HTTP are paced to what they leave of the link
(:class:`~appliance.roomcast.link.HttpPacer`).
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

from appliance.config import Layout
from appliance.formats.manifest import Manifest
from appliance.formats.roomwire import chunk_table
from appliance.roomcast import budget
from appliance.roomcast.link import DropCounter, HttpPacer, interface_of, interface_speed
from appliance.roomcast.priority import DEFAULT_NICE, Priority
from appliance.roomcast.session import RoomSession

log = logging.getLogger("slate.roomcast")

DEFAULT_GROUP = "239.255.83.0/24"  # administratively scoped (RFC 2365), TTL 1
DEFAULT_PORT = 5483
DEFAULT_RATE = 900_000_000  # bit/s: 90 % of 1 GbE when the link's speed is unknown
MULTICAST_SHARE = 0.9  # of the link: the default multicast budget (--multicast-rate)
REBALANCE_EVERY = 1.0  # s: the shares are looked at again (seats leave, go silent)


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
    ifname = interface_of(address)
    speed = interface_speed(ifname) if ifname else 0
    return int(speed * MULTICAST_SHARE) if speed else DEFAULT_RATE


def read_status(home: Path, max_age: float = 3600.0) -> list[dict[str, Any]]:
    """The sessions' status files (written each second by their senders; the newest
    first), those updated in the last ``max_age`` seconds."""
    import json

    found = []
    for path in Layout(home).roomcast_status.glob("*.json"):
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
        link: int = 0,
        status_dir: Path | None = None,
        query_interval: float = 60.0,
        nice: int = DEFAULT_NICE,
    ) -> None:
        """``rate``: the multicast budget in bit/s, shared by the sessions running at
        once (0: 90 % of ``link``).  ``link``: the imaging link's bit/s (0: ``rate`` /
        0.9 when ``rate`` is given, else the interface's speed)."""
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
        self._rate_given = rate
        self._link = link
        self._ifname: str | None = None
        self.drops = DropCounter(self.interface)
        self.http = HttpPacer()  # chunks served by HTTP, paced while sessions run
        self._lock = threading.Lock()
        self._sessions: dict[int, RoomSession] = {}
        self._by_version: dict[tuple[str, str], RoomSession] = {}
        self._senders: dict[int, Any] = {}
        self._keeper: threading.Thread | None = None  # re-splits the budget while any runs
        self._next_group = 0
        self._expected_cache: dict[tuple[str, str], tuple[float, frozenset[int]]] = {}

    @property
    def rate(self) -> int:
        """The multicast budget (bit/s) the running sessions share."""
        if not self._rate:
            if self._link:
                self._rate = int(self._link * MULTICAST_SHARE)
            else:
                self._rate = link_rate(self.address)
        return self._rate

    @property
    def link(self) -> int:
        """The imaging link's bit/s: ``--link-rate``, else the interface's speed, else
        (a link that does not say) the multicast rate / 0.9 when it was given, else the
        default rate / 0.9.  The interface goes before ``--multicast-rate``: a site that
        caps multicast at 100M on a 1 Gbit/s port has not said its link is 111 Mbit/s, and
        HTTP paced to the rest of that would crawl at 11 Mbit/s beside every session."""
        if not self._link:
            ifname = self.interface()
            speed = interface_speed(ifname) if ifname else 0
            if speed:
                self._link = speed
            elif self._rate_given:
                self._link = int(self._rate_given / MULTICAST_SHARE)
            else:
                self._link = int(DEFAULT_RATE / MULTICAST_SHARE)
        return self._link

    def interface(self) -> str | None:
        """The interface holding the appliance's address (looked up once)."""
        if self._ifname is None and self.address:
            self._ifname = interface_of(self.address) or ""
        return self._ifname or None

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
        from appliance.jobs import queries

        return queries.multicast_restores(self.connect(), image, version)

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
        from appliance.jobs import queries

        ids = queries.session_joiners(self.connect(), image, version)
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
        # tc, and the link's speed and the budget: looked up outside the lock
        drops_at_start, link, rate = self.drops(fresh=True), self.link, self.rate
        with self._lock:
            session = self._by_version.get(key)
            if session is not None and not session.ended:
                return session
            sid = secrets.randbits(32) or 1
            n = self.groups.num_addresses  # .0 of the range is skipped where there is room
            group = self.groups[self._next_group % (n - 1) + 1 if n > 1 else 0]
            self._next_group += 1
            # Its share of the budget: the running sessions step down to theirs below.
            split = budget.shares(rate, [*self._using(), sid])
            session = RoomSession(
                sid,
                manifest.image,
                manifest.version,
                chunk_table(manifest),
                group=str(group),
                port=self.port,
                rate=split[sid],
                expected=lambda: self.expected(*key),
            )
            session.tx_drops = _since(self.drops, drops_at_start)
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
            self._share(split, link)
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep_budget, name="roomcast-budget", daemon=True
                )
                self._keeper.start()
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
            self._rebalance()  # the others step back up

    # -- the budget -----------------------------------------------------------------------
    def _using(self) -> list[int]:
        """The sessions in use, oldest first (with the lock held): not ended, and with a
        seat listening or none joined yet.  A session whose seats have all left (or all
        went HTTP-only) sends nothing but beacons until it ends, 30 s later: its share
        goes to the others meanwhile."""
        return [
            sid
            for sid, s in self._sessions.items()
            if not s.ended and (not s.seats or s.listening())
        ]

    def _rebalance(self) -> None:
        """Split the budget again among the sessions in use (with the lock held)."""
        self._share(budget.shares(self.rate, self._using()), self.link)

    def _keep_budget(self) -> None:
        """Once a second while any session runs: seats leave and go silent without the
        registry hearing of it, and a session without listeners gives its share back."""
        while True:
            time.sleep(REBALANCE_EVERY)
            if not self.rebalance():
                return

    def rebalance(self) -> bool:
        """Split the budget again now; False (and the keeper ends) when none runs."""
        with self._lock:
            if not self._sessions:
                self._keeper = None
                return False
            self._rebalance()
            return True

    def _share(self, split: dict[int, int], link: int) -> None:
        """Give each running session its share (with the lock held), and HTTP what the
        sessions leave of the link."""
        for sid, bits in split.items():
            using = self._sessions.get(sid)
            if using is not None and using.rate != bits:
                using.set_rate(bits)
        rates = [s.rate for sid, s in self._sessions.items() if sid in split]
        self.http.set_rate(budget.http_rate(link, rates))

    def http_pace(self) -> Callable[[int], float] | None:
        """What each block of a chunk served by HTTP must pass now (None: not paced)."""
        return self.http.take if self.http.paced else None

    def start(self) -> None:
        """Nothing to start: a session's sender starts with the session (session_for)."""

    def stop(self) -> None:
        """End every session's sender and the IGMP querier."""
        with self._lock:
            senders = list(self._senders.values())
            querier, self._querier = self._querier, None
        for sender in senders:
            sender.stop()
        if querier is not None:
            querier.stop()


def _since(count: Callable[[], int | None], start: int | None) -> Callable[[], int | None]:
    """The interface's transmit drops since ``start`` (None when they cannot be read):
    all of them, whatever sent them."""

    def drops() -> int | None:
        now = count()
        return None if now is None or start is None else max(0, now - start)

    return drops
