"""Roomcast's seat, sans I/O: what a seat knows of its room session, fed datagrams and
times, answering with complete frames, reports and fallback reasons.

No socket, no clock, no thread of its own (the h11 way): :mod:`bootimage.client.roomrx`
reads the group and calls :meth:`Listener.feed` with each datagram, where it came from
and the time; :mod:`bootimage.client.roomcast` writes the frames that come back, makes
the reports (:meth:`Chunks.report`) and asks :func:`fallback_reason` whether to go on.
The receiver thread and the seat's own thread share :class:`Chunks` behind its lock.

Every datagram is checked against the session's key (:class:`roomwire.SessionKey`)
before it touches any state: one that fails, or a beacon whose sequence number does not
go forward, is dropped and counted as *forged*, with the address it came from.  So a
forger on the VLAN can neither end the session, nor set its rate, nor start a chunk,
nor make the seat think it catches too little.  A replayed data datagram is an
authentic piece (used if still needed) but drives nothing: its number is old.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from appliance.formats import roomwire

# s between two reports when nothing is lost (a loss wakes the seat at once, after
# REPORT_GAP): with 32 seats reporting twice a second and posting progress besides, the
# appliance's HTTP answers were 3.2 % of all it sent; its scheduler needs news of losses.
REPORT_EVERY = 1.0
REPORT_GAP = 0.1  # s: the least time between two reports (a loss wakes the seat early)
FIRST_BEACON = 3.0  # s after the join
BEACONS_LOST = 5.0  # s without an authentic beacon
CATCH_WINDOW = 5.0  # s over which the catch ratio is judged
LOW_CATCH = 0.7  # below this for a whole window: HTTP-only
REPAIR_CATCH = 0.9  # below this the seat asks no piece repairs (HTTP brings those chunks)
MIN_WINDOW_BYTES = 1_000_000  # a window must have seen this much sent to judge it
LOST_AFTER = 0.3  # s without a piece before a chunk's missing pieces count as lost
STALE_PARTIAL = 4.0  # s without a piece: a chunk held in part is dropped, needed whole
NO_PROGRESS = 10.0  # s without a chunk written: multicast is not getting this seat done
MAX_SOURCES = 8  # forgers' addresses kept (the most active); the count goes on past it

NEED, PARTIAL, CLAIMED, DONE = 1, 2, 3, 0


@dataclass
class Placement:
    target: int  # index of the target (disk) it goes to
    offset: int
    length: int


@dataclass
class Assembly:
    """One chunk's frame being put together from pieces."""

    frame_len: int
    pieces: int
    buf: bytearray
    have: bytearray
    got: int = 0
    top: int = -1  # the highest piece received: pieces below it that are missing were lost
    last: float = 0.0
    asked: set[int] = field(default_factory=set)  # lost pieces already reported
    passed: bool = False  # the sender has gone on to another chunk: every gap is a loss

    def missing(self, now: float) -> list[int]:
        upto = self.pieces if self.passed or now - self.last >= LOST_AFTER else self.top
        return [p for p in range(max(0, upto)) if not self.have[p]]


@dataclass
class Stats:
    mcast_bytes: int = 0  # verified chunk bytes written from multicast
    http_bytes: int = 0  # verified chunk bytes written from HTTP
    chunks_mcast: int = 0
    chunks_http: int = 0
    lost: int = 0  # pieces the seat asked to be repaired
    dropped: int = 0  # pieces thrown away (no room in memory, stale)
    bad: int = 0  # complete chunks that did not match their name
    forged: int = 0  # datagrams on the group that were not the session's, or replayed
    dropped_datagrams: Counter[str] = field(default_factory=Counter)
    forgers: Counter[str] = field(default_factory=Counter)  # address → forged datagrams

    def report(self) -> dict[str, float]:
        return {
            "mcast_bytes": self.mcast_bytes,
            "http_bytes": self.http_bytes,
            "chunks_mcast": self.chunks_mcast,
            "chunks_http": self.chunks_http,
            "lost": self.lost,
            "dropped": self.dropped,
            "bad": self.bad,
            "forged": self.forged,
        }

    def sources(self) -> list[str]:
        """The addresses forged datagrams came from, the most active first."""
        return [a for a, _n in self.forgers.most_common(MAX_SOURCES)]


class Chunks:
    """The seat's chunks by table index: what it needs, holds in part, has claimed for
    writing, and is done with — behind one lock, so each chunk is written once.

    Only authentic pieces reach an assembly, so one frame per chunk is put together: a
    piece is a piece, whoever replays it.  An assembly that stops growing for
    :data:`STALE_PARTIAL` seconds is dropped and its chunk needed whole again."""

    def __init__(self, placements: dict[int, list[Placement]], max_partial: int) -> None:
        self.placements = placements
        self.state = dict.fromkeys(placements, NEED)
        self.partial: dict[int, Assembly] = {}
        self.max_partial = max_partial
        self.lock = threading.Lock()
        self.all_done = threading.Event()
        self.wake = threading.Event()  # report now: a loss is known, or all is done
        self.left = len(placements)
        self.progress_at: float | None = None  # when a chunk was last written
        self.dropped = 0  # pieces thrown away (no room, stale)
        if not self.left:
            self.all_done.set()
            self.wake.set()

    def claim(self, k: int) -> bool:
        """Take a needed (or partly received) chunk for writing by HTTP."""
        with self.lock:
            if self.state.get(k) in (NEED, PARTIAL):
                self._forget(k)
                self.state[k] = CLAIMED
                return True
            return False

    def finish(self, k: int, ok: bool, now: float) -> None:
        with self.lock:
            if self.state.get(k) != CLAIMED:
                return
            if ok:
                self.state[k] = DONE
                self.left -= 1
                self.progress_at = now
                if not self.left:
                    self.all_done.set()
                    self.wake.set()
            else:
                self.state[k] = NEED

    def remaining(self) -> list[int]:
        with self.lock:
            return [k for k, s in self.state.items() if s in (NEED, PARTIAL)]

    def report(self, now: float, repairs: bool) -> tuple[set[int], dict[int, list[int]], int]:
        """(needed whole, {chunk: lost pieces}, pieces newly found lost) for the
        appliance; without ``repairs`` partly received chunks count as needed whole."""
        with self.lock:
            for k in [k for k, a in self.partial.items() if a.last < now - STALE_PARTIAL]:
                self._forget(k)
                self.state[k] = NEED
            need = {k for k, s in self.state.items() if s in (NEED, CLAIMED)}
            partial: dict[int, list[int]] = {}
            new = 0
            for k, asm in self.partial.items():
                lost = asm.missing(now) if repairs else []
                if lost:
                    partial[k] = lost
                    new += len(set(lost) - asm.asked)
                    asm.asked.update(lost)
                else:
                    need.add(k)
            return need, partial, new

    # -- under the lock, from the listener ------------------------------------------------
    def assembly(self, k: int, frame_len: int, pieces: int) -> Assembly | None:
        """Chunk ``k``'s assembly, made if there is room; None when the chunk is not
        wanted (done, claimed, never needed) or its frame is not this length."""
        state = self.state.get(k)
        if state not in (NEED, PARTIAL):
            return None
        asm = self.partial.get(k)
        if asm is not None:
            return asm if asm.frame_len == frame_len else None
        while len(self.partial) >= self.max_partial:
            oldest = min(self.partial, key=lambda i: self.partial[i].last)
            self._forget(oldest)
            self.state[oldest] = NEED
        self.state[k] = PARTIAL
        asm = self.partial[k] = Assembly(frame_len, pieces, bytearray(frame_len), bytearray(pieces))
        return asm

    def passed(self, k: int) -> None:
        """A send of chunk ``k`` has ended: what the seat still lacks of it is lost — ask
        for it now.  Also after a repair that left it short: the appliance repairs a chunk
        only on a report made after that send's end (RoomSession), so waiting for the
        next report a second away would hold the chunk, and in the end the room, back."""
        asm = self.partial.get(k)
        if asm is not None:
            asm.passed = True
            self.wake.set()

    def complete(self, k: int) -> None:
        """Chunk ``k`` has a whole frame: it is claimed for writing."""
        self.partial.pop(k, None)
        self.state[k] = CLAIMED

    def _forget(self, k: int) -> None:
        asm = self.partial.pop(k, None)
        if asm is not None:
            self.dropped += asm.got


class Listener:
    """What the seat has heard of its session: fed each datagram with its source and
    the time, it returns the chunks whose frames it completed — already claimed, to be
    checked against their names and written by the caller."""

    def __init__(self, session: int, key: roomwire.SessionKey, chunks: Chunks, stats: Stats):
        self.session, self.key, self.chunks, self.stats = session, key, chunks, stats
        self.got_bytes = 0  # authentic, fresh data datagram bytes received
        self.beacons: list[tuple[float, int, int]] = []  # (time, sent, got_bytes)
        self.last_beacon: float | None = None
        self.beacon_seq = -1  # the newest beacon's number: only a higher one is believed
        self.data_seq = -1  # the newest data datagram's number
        self.ending = False
        self.rate = 0
        self._current = -1  # the chunk the newest data datagram was of
        self._active = True  # the newest beacon's state was ACTIVE

    def feed(self, data: memoryview, source: str, now: float) -> list[tuple[int, bytearray]]:
        pkt = roomwire.decode(data, self.key)
        if isinstance(pkt, roomwire.Malformed):
            return self._forged(pkt.reason, source)
        if pkt.session != self.session:  # the key of another session of ours? never meant
            return self._forged("foreign-session", source)
        if isinstance(pkt, roomwire.Beacon):
            if pkt.seq <= self.beacon_seq:
                return self._forged("replayed-beacon", source)
            self._beacon(pkt, now)
            return []
        fresh = pkt.seq > self.data_seq
        if fresh:
            self.data_seq = pkt.seq
            self.got_bytes += len(data)
        else:  # a piece is a piece (it may still serve), but it says nothing of the send
            self._forged("replayed-data", source)
        return self._piece(pkt, now, fresh)

    def _forged(self, reason: str, source: str) -> list[tuple[int, bytearray]]:
        s = self.stats
        s.dropped_datagrams[reason] += 1
        s.forged += 1
        if source in s.forgers or len(s.forgers) < 4 * MAX_SOURCES:
            s.forgers[source] += 1
        return []

    def _beacon(self, b: roomwire.Beacon, now: float) -> None:
        self.beacon_seq = b.seq
        self.last_beacon = now
        self.rate = b.rate
        self.ending = self.ending or b.state == roomwire.ENDING
        active, self._active = self._active, b.state == roomwire.ACTIVE
        if active and not self._active and self.chunks.partial:  # nothing more is coming
            with self.chunks.lock:
                for k in list(self.chunks.partial):
                    self.chunks.passed(k)
        self.beacons.append((now, b.sent, self.got_bytes))
        if len(self.beacons) > 200:
            del self.beacons[:100]

    def _piece(self, d: roomwire.Data, now: float, fresh: bool) -> list[tuple[int, bytearray]]:
        c = self.chunks
        with c.lock:
            if fresh and d.chunk != self._current:  # a chunk's send is whole: the last ended
                c.passed(self._current)
                self._current = d.chunk
            asm = c.assembly(d.chunk, d.frame_len, d.pieces)
            if asm is None:  # out of the table, done already, or never needed here
                self.stats.dropped_datagrams["not-needed"] += 1
                return []
            if asm.have[d.piece]:
                return []
            start = d.piece * roomwire.PIECE_SIZE
            asm.buf[start : start + len(d.payload)] = d.payload
            asm.have[d.piece] = 1
            asm.got += 1
            asm.top = max(asm.top, d.piece)
            asm.last = now
            if asm.got < asm.pieces:
                return []
            c.complete(d.chunk)
            return [(d.chunk, asm.buf)]

    @property
    def seen(self) -> int:
        """The data counter of the newest beacon read: every datagram sent before it has
        been read too (one path, in order), so a report made now is up to date with it."""
        return self.beacons[-1][1] if self.beacons else 0

    def catch(self, window: float, now: float) -> tuple[float, int] | None:
        """(share of the data sent in the last ``window`` s that arrived, bytes sent)."""
        recent = [b for b in self.beacons if now - b[0] <= window]
        if len(recent) < 2:
            return None
        sent = recent[-1][1] - recent[0][1]
        got = recent[-1][2] - recent[0][2]
        return (min(1.0, got / sent) if sent > 0 else 1.0), sent


def fallback_reason(rx: Listener, joined: float, now: float, progress_at: float | None) -> str:
    """Why this seat should stop listening to multicast, or "".  Judged on authentic
    traffic only: forged datagrams, at any rate, are only named in the reason when the
    authentic ones have stopped."""
    hint = "multicast is not reaching this seat: check IGMP snooping and the querier"
    forged = rx.stats.forged
    if forged:
        hint = f"forged datagrams on the group: {forged} dropped, from " + ", ".join(
            rx.stats.sources()[:3]
        )
    if rx.last_beacon is None:
        if now - joined >= FIRST_BEACON:
            what = "authentic beacon" if forged else "beacon"
            return f"no {what} within {FIRST_BEACON:.0f} s of joining ({hint})"
        return ""
    if now - rx.last_beacon >= BEACONS_LOST:
        if forged:
            return f"{hint}; authentic data stopped for {now - rx.last_beacon:.0f} s"
        return f"no beacon for {now - rx.last_beacon:.0f} s ({hint})"
    if rx.ending:
        return "the appliance ended the session"
    if now - max(joined, progress_at or joined) >= NO_PROGRESS:
        return f"no chunk was completed for {NO_PROGRESS:.0f} s"
    window = rx.catch(CATCH_WINDOW, now)
    if (
        window is not None
        and now - joined >= CATCH_WINDOW
        and window[1] >= MIN_WINDOW_BYTES
        and window[0] < LOW_CATCH
    ):
        return (
            f"it caught {window[0]:.0%} of the multicast for {CATCH_WINDOW:.0f} s (this link or "
            f"machine is slower than the session's {rx.rate / 1e6:.0f} Mbit/s)"
        )
    return ""
