"""One room session: an image version multicast to every seat restoring it.

The session is the state the control plane (the client API: join, report, leave) and
the sender thread share, behind one lock.  Decisions are :mod:`.picker`'s; this keeps
the seats' latest reports, what was sent when, and the figures ``slate room status`` and
the console show.  A seat that stops reporting for :data:`SEAT_TIMEOUT` seconds (a
machine switched off) no longer counts.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.formats.roomwire import KEY_SIZE, SessionKey
from appliance.roomcast import picker

SEAT_TIMEOUT = 15.0
STAT_KEYS = (
    "mcast_bytes", "http_bytes", "chunks_mcast", "chunks_http", "lost", "dropped", "bad", "forged",
)  # fmt: skip
MAX_FORGERS = 8  # source addresses of forged datagrams kept per seat


@dataclass
class Seat:
    job: int
    name: str
    address: str
    joined: float
    need: set[int]
    partial: dict[int, frozenset[int]] = field(default_factory=dict)
    http_only: bool = False
    why: str = ""  # why it takes everything by HTTP
    last_report: float = 0.0
    left: bool = False
    stats: dict[str, float] = field(default_factory=dict)
    forced: bool = False  # its job asks for multicast even when no other seat needs a chunk
    catch: float | None = None  # share of the pieces sent while it listened that it got
    # Chunks its reports' answers sent it to fetch by HTTP, and the first such answer
    # (when, the first pass's cursor, seats still expected): why a seat took much by HTTP.
    handed: set[int] = field(default_factory=set)
    first_handed: dict[str, float] | None = None
    seen: int | None = None  # the data counter its latest report had seen (None: not said)
    forgers: list[str] = field(default_factory=list)  # where forged datagrams came from

    def view(self, settled: Mapping[int, int]) -> picker.SeatNeeds:
        """What the scheduler goes by.  Lost pieces of a chunk sent again since this
        seat's latest report (its ``seen`` is short of the send's end) are not asked for:
        that report was made before the seat could have them, and repeating the repair
        on it sent the same pieces twice (its next report says what is still lost)."""
        partial = {
            k: lost if self.seen is None or self.seen >= settled.get(k, 0) else frozenset()
            for k, lost in self.partial.items()
        }
        return picker.SeatNeeds(frozenset(self.need), partial, self.http_only)


class RoomSession:
    def __init__(
        self,
        sid: int,
        image: str,
        version: str,
        table: list[str],
        *,
        group: str,
        port: int,
        rate: int,
        expected: Callable[[], frozenset[int]] = frozenset,
        clock: Callable[[], float] = time.monotonic,
        key: bytes | None = None,
    ) -> None:
        self.id = sid
        # The datagrams' key: given to a seat only in the answer to its join (over the
        # pinned TLS client API), never in the status a technician or a file sees.
        self.key = key or secrets.token_bytes(KEY_SIZE)
        self.wire_key = SessionKey(self.key)
        self.image, self.version = image, version
        self.table = table
        self.group, self.port, self.rate = group, port, rate
        self.expected = expected
        self.clock = clock
        self.started = clock()
        self.seats: dict[int, Seat] = {}
        self.cursor = 0
        self.last_sent: dict[int, float] = {}
        self.last_repair: dict[int, float] = {}
        self.sent_chunks = 0
        self.sent_repairs = 0
        self.sent_bytes = 0
        # The data counter (``sent_bytes``, what beacons carry) when each chunk's last
        # send, whole or repair, was out: a report whose seat had not seen that much yet
        # names pieces that were still on their way to it (see :meth:`report`).
        self.settled: dict[int, int] = {}
        self.stale_repairs = 0  # chunks' lost pieces not asked for, being out of date
        self._forgery_told = False
        # The appliance's transmit drops on its imaging interface since this session
        # started (Roomcast sets it; None: unknown), in the status once a second.
        self.tx_drops: Callable[[], int | None] = lambda: None
        self.ended = False
        self._lock = threading.Lock()

    @property
    def chunks(self) -> int:
        return len(self.table)

    # -- the control plane --------------------------------------------------------------
    def join(
        self, job: int, name: str, address: str, need: set[int], *, forced: bool = False
    ) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            self.seats[job] = Seat(
                job, name, address, now, set(need), last_report=now, forced=forced
            )
        return {**self.describe(), "key": self.key.hex()}

    def describe(self) -> dict[str, Any]:
        return {
            "transport": "multicast",
            "session": self.id,
            "group": self.group,
            "port": self.port,
            "rate": self.rate,
            "chunks": self.chunks,
        }

    def report(
        self,
        job: int,
        need: set[int],
        partial: Mapping[int, frozenset[int]],
        *,
        http_only: bool = False,
        why: str = "",
        stats: Mapping[str, float] | None = None,
        catch: float | None = None,
        seen: int | None = None,
        forgers: list[str] | None = None,
    ) -> frozenset[int]:
        """Record a seat's report; returns the chunks it should fetch by HTTP now.

        ``seen``: the data counter of the last beacon the seat had read when it made the
        report.  Pieces it reports lost from a chunk whose last send ended after that
        were on their way to it still (the report crossed the repair): they are not
        asked for again until a report that has seen the send's end says so (Seat.view;
        here they are only counted)."""
        now = self.clock()
        with self._lock:
            seat = self.seats.get(job)
            if seat is None or seat.left:
                raise KeyError(job)
            if seen is not None:
                self.stale_repairs += sum(
                    1 for k, lost in partial.items() if lost and seen < self.settled.get(k, 0)
                )
            seat.need, seat.partial = set(need), dict(partial)
            seat.seen = seen
            seat.last_report = now
            if http_only and not seat.http_only:
                seat.http_only, seat.why = True, why or "the seat chose HTTP"
            seat.stats.update({k: float(v) for k, v in (stats or {}).items() if k in STAT_KEYS})
            seat.catch = catch
            if forgers:
                seat.forgers = list(forgers)[:MAX_FORGERS]
            views = self._views(now)
            mine = seat.view(self.settled)
            cursor = self.cursor
            least = self._min_demand(now)
        expected = self._expected()
        share = picker.http_share(mine, views, cursor, expected=expected, min_demand=least)
        if share:
            with self._lock:
                if seat.first_handed is None:
                    seat.first_handed = {
                        "after": round(now - seat.joined, 2),
                        "cursor": cursor,
                        "expected": expected,
                        "seats": len(views),
                        "chunks": len(share),
                    }
                seat.handed.update(share)
        return share

    def first_forgery(self) -> bool:
        """True the first time it is asked: a notification of forged traffic goes out
        once a session, not once a report."""
        with self._lock:
            told, self._forgery_told = self._forgery_told, True
            return not told

    def leave(self, job: int, stats: Mapping[str, float] | None = None) -> None:
        with self._lock:
            seat = self.seats.get(job)
            if seat is not None:
                seat.left = True
                seat.need.clear()
                seat.partial.clear()
                seat.stats.update({k: float(v) for k, v in (stats or {}).items() if k in STAT_KEYS})

    # -- the sender's side ----------------------------------------------------------------
    def next_send(self) -> picker.Pick:
        now = self.clock()
        expected = self._expected()
        with self._lock:
            pick = picker.pick(
                self._views(now),
                self.chunks,
                self.cursor,
                expected=expected,
                last_sent=self.last_sent,
                last_repair=self.last_repair,
                now=now,
                min_demand=self._min_demand(now),
            )
            self.cursor = pick.cursor
            if pick.chunk is not None:
                if pick.pieces is None:
                    self.last_sent[pick.chunk] = now
                    self.sent_chunks += 1
                else:
                    self.last_repair[pick.chunk] = now
                    self.sent_repairs += 1
        return pick

    def count_sent(self, nbytes: int) -> None:
        with self._lock:
            self.sent_bytes += nbytes

    def set_rate(self, bits: int) -> None:
        """The session's share of the appliance's multicast budget, set by Roomcast as
        other sessions start and end: what its sender paces to from its next send on,
        and what its beacons and status say."""
        with self._lock:
            self.rate = bits

    def sent_out(self, chunk: int) -> None:
        """The sender has put the last datagram of its send of ``chunk`` on the wire."""
        with self._lock:
            self.settled[chunk] = self.sent_bytes

    def listening(self) -> int:
        """Seats that still take part by multicast."""
        now = self.clock()
        with self._lock:
            return sum(1 for s in self._live(now) if not s.http_only)

    def idle_for(self) -> float:
        """Seconds since the last seat left or went silent (0 while any is live)."""
        now = self.clock()
        with self._lock:
            if self._live(now):
                return 0.0
            last = max((s.last_report for s in self.seats.values()), default=self.started)
            return now - last

    def _live(self, now: float) -> list[Seat]:
        return [s for s in self.seats.values() if not s.left and now - s.last_report < SEAT_TIMEOUT]

    def _min_demand(self, now: float) -> int:
        return 1 if any(s.forced for s in self._live(now)) else 2

    def _views(self, now: float) -> list[picker.SeatNeeds]:
        return [s.view(self.settled) for s in self._live(now)]

    def _expected(self) -> int:
        """Machines whose jobs will join this session and have not joined yet."""
        try:
            ids = self.expected()
        except Exception:  # a database hiccup must not stop the session
            return 0
        with self._lock:
            return len(ids - self.seats.keys())

    # -- what the technician sees ---------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self.clock()
        drops = self.tx_drops()  # may ask tc: not under the lock the reports need
        with self._lock:
            seats = [
                {
                    "job": s.job,
                    "name": s.name,
                    "address": s.address,
                    "transport": "http" if s.http_only else "multicast",
                    "why": s.why,
                    "need": len(s.need) + len(s.partial),
                    "catch": s.catch,
                    "state": "left"
                    if s.left
                    else "silent"
                    if now - s.last_report >= SEAT_TIMEOUT
                    else "live",
                    **{k: s.stats.get(k, 0) for k in STAT_KEYS},
                    "forgers": list(s.forgers),
                    "handed_http": len(s.handed),
                    "first_handed": s.first_handed,
                }
                for s in self.seats.values()
            ]
            return {
                **self.describe(),
                "image": self.image,
                "version": self.version,
                "age": round(now - self.started, 1),
                "cursor": self.cursor,
                "sent_chunks": self.sent_chunks,
                "sent_repairs": self.sent_repairs,
                "stale_repairs": self.stale_repairs,
                "sent_bytes": self.sent_bytes,
                "seats": seats,
                "tx_drops": drops,
                **forgery(seats),
            }


def forgery(seats: list[dict[str, Any]]) -> dict[str, Any]:
    """The room's forged datagrams: how many its seats dropped, the addresses they came
    from, and the warning a technician reads (empty when there were none)."""
    forged = int(sum(s.get("forged", 0) for s in seats))
    sources = sorted({a for s in seats for a in s.get("forgers", [])})
    warning = ""
    if forged:
        warning = (
            f"forged traffic on the imaging VLAN: the seats dropped {forged} datagrams that"
            f" did not carry the session's key, from {', '.join(sources) or 'unknown'}"
            " (none was believed; find that machine on the switch)"
        )
    return {"forged": forged, "forgers": sources, "warning": warning}
