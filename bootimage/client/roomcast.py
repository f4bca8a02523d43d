"""Roomcast's seat: restore the job's version with the room's multicast session, and
whatever multicast does not bring by HTTP.

The plan of one restore: zero chunks are written (or checked) locally; the data chunks
already right on the disk are kept (the delta check); the rest are the *needs*, named by
their index in the session's chunk table (:func:`appliance.imagefmt.roomwire.chunk_table`).
The seat joins with its needs; a receiver thread assembles the pieces of each chunk's
stored frame from the group; a complete frame is decompressed and checked against the
manifest's SHA-256 before it is written at the manifest's offsets, exactly as an HTTP
chunk is.  Twice a second the seat reports what it still needs and which pieces it lost;
the answer names the chunks to fetch by HTTP meanwhile (those no other seat needs).

Multicast is an accelerator: the seat goes HTTP-only — says why in the job log — when no
beacon comes within 3 s of the join, when beacons stop for 5 s, when it catches too
little of what is sent (a slow link), or when the session ends; then it fetches what is
left by HTTP.  A datagram that is malformed, of another session or out of range is
dropped and counted; a chunk whose bytes do not match its name is dropped and needed
again.  Nothing is ever written that was not verified.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import IntegrityError, NotFound, PeerError, SlateError
from appliance.imagefmt import roomwire
from appliance.imagefmt.chunkio import TargetIo, decode_chunk_into, missing_chunks, write_chunks
from appliance.imagefmt.manifest import Manifest
from bootimage.client.api import Api, Unreachable
from bootimage.client.progress import Reporter
from bootimage.client.target import FileTarget

# s between two reports when nothing is lost (a loss wakes the seat at once, after
# REPORT_GAP): with 32 seats reporting twice a second and posting progress besides, the
# appliance's HTTP answers were 3.2 % of all it sent; its scheduler needs news of losses.
REPORT_EVERY = 1.0
REPORT_GAP = 0.1  # s: the least time between two reports (a loss wakes the seat early)
FIRST_BEACON = 3.0  # s after the join
BEACONS_LOST = 5.0  # s without a beacon
CATCH_WINDOW = 5.0  # s over which the catch ratio is judged
LOW_CATCH = 0.7  # below this for a whole window: HTTP-only
REPAIR_CATCH = 0.9  # below this the seat asks no piece repairs (HTTP brings those chunks)
MIN_WINDOW_BYTES = 1_000_000  # a window must have seen this much sent to judge it
LOST_AFTER = 0.3  # s without a piece before a chunk's missing pieces count as lost
STALE_PARTIAL = 4.0  # s without a piece: a chunk held in part is dropped, needed whole
MAX_CANDIDATES = 3  # frames of one chunk assembled at once (a forger may send its own)
NO_PROGRESS = 10.0  # s without a chunk written: multicast is not getting this seat done
RCVBUF = 32 * 1024 * 1024
SO_RCVBUFFORCE = 33
# Receive offload: the kernel hands over up to 64 KiB of one flow's equal-sized datagrams
# in one read, their size in a control message (Linux 5.0+).  Datagrams that the
# appliance sent with UDP_SEGMENT then cross the stack as one packet instead of 40.
UDP_GRO = 104
GRO_CMSG = socket.CMSG_SPACE(4)

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
    dropped: int = 0  # pieces thrown away (no room in memory, stale, a losing candidate)
    bad: int = 0  # complete chunks that did not match their name
    dropped_datagrams: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, float]:
        return {
            "mcast_bytes": self.mcast_bytes,
            "http_bytes": self.http_bytes,
            "chunks_mcast": self.chunks_mcast,
            "chunks_http": self.chunks_http,
            "lost": self.lost,
            "dropped": self.dropped,
            "bad": self.bad,
        }


class Chunks:
    """The seat's chunks by table index: what it needs, holds in part, has claimed for
    writing, and is done with — behind one lock, so each chunk is written once.

    A chunk held in part may have several candidate frames (keyed by frame length): a
    forger on the group can start a chunk with a frame of its own, and must not lock
    the real one out.  The candidate that completes is checked against the chunk's name
    like any other; a candidate that stops growing for :data:`STALE_PARTIAL` seconds is
    dropped and its chunk needed whole again."""

    def __init__(self, placements: dict[int, list[Placement]], max_partial: int) -> None:
        self.placements = placements
        self.state = dict.fromkeys(placements, NEED)
        self.partial: dict[int, dict[int, Assembly]] = {}
        self.held = 0  # assemblies in memory, over every chunk
        self.max_partial = max_partial
        self.lock = threading.Lock()
        self.all_done = threading.Event()
        self.wake = threading.Event()  # report now: a loss is known, or all is done
        self.left = len(placements)
        self.progress_at = time.monotonic()  # when a chunk was last written
        self.dropped = 0  # pieces thrown away (no room, stale, a losing candidate)
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

    def finish(self, k: int, ok: bool) -> None:
        with self.lock:
            if self.state.get(k) != CLAIMED:
                return
            if ok:
                self.state[k] = DONE
                self.left -= 1
                self.progress_at = time.monotonic()
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
            for k in [k for k, c in self.partial.items() if _newest(c) < now - STALE_PARTIAL]:
                self._forget(k)
                self.state[k] = NEED
            need = {k for k, s in self.state.items() if s in (NEED, CLAIMED)}
            partial: dict[int, list[int]] = {}
            new = 0
            for k, cands in self.partial.items():
                asm = max(cands.values(), key=lambda a: a.got)
                lost = asm.missing(now) if repairs else []
                if lost:
                    partial[k] = lost
                    new += len(set(lost) - asm.asked)
                    asm.asked.update(lost)
                else:
                    need.add(k)
            return need, partial, new

    # -- under the lock, from the receiver ------------------------------------------------
    def assembly(self, k: int, frame_len: int, pieces: int) -> Assembly | None:
        """The candidate of chunk ``k`` with this frame length, made if there is room;
        None when the chunk is not wanted (done, claimed, never needed)."""
        state = self.state.get(k)
        if state not in (NEED, PARTIAL):
            return None
        cands = self.partial.setdefault(k, {})
        self.state[k] = PARTIAL
        asm = cands.get(frame_len)
        if asm is None:
            if len(cands) >= MAX_CANDIDATES:
                self._drop(k, min(cands, key=lambda n: cands[n].got))
            while self.held >= self.max_partial and self.partial:
                oldest = min(self.partial, key=lambda i: _newest(self.partial[i]))
                self._forget(oldest)
                self.state[oldest] = NEED
            cands = self.partial.setdefault(k, {})
            asm = cands[frame_len] = Assembly(
                frame_len, pieces, bytearray(frame_len), bytearray(pieces)
            )
            self.held += 1
        return asm

    def passed(self, k: int) -> None:
        """A send of chunk ``k`` has ended: what the seat still lacks of it is lost — ask
        for it now.  Also after a repair that left it short: the appliance repairs a chunk
        only on a report made after that send's end (RoomSession), so waiting for the
        next report a second away would hold the chunk, and in the end the room, back."""
        for asm in self.partial.get(k, {}).values():
            asm.passed = True
            self.wake.set()

    def complete(self, k: int) -> None:
        """Chunk ``k`` has a whole frame: its candidates go (none counts as dropped)."""
        self.held -= len(self.partial.pop(k, {}))
        self.state[k] = CLAIMED

    def _drop(self, k: int, frame_len: int) -> None:
        asm = self.partial[k].pop(frame_len)
        self.held -= 1
        self.dropped += asm.got

    def _forget(self, k: int) -> None:
        for frame_len in list(self.partial.get(k, {})):
            self._drop(k, frame_len)
        self.partial.pop(k, None)


def _newest(cands: dict[int, Assembly]) -> float:
    return max((a.last for a in cands.values()), default=0.0)


class Receiver:
    """The multicast socket and the thread that reads it.  Complete frames go to
    ``deliver(k, frame)``; the caller has claimed them."""

    def __init__(
        self,
        group: str,
        port: int,
        local: str,
        session: int,
        chunks: Chunks,
        stats: Stats,
        deliver: Callable[[int, bytearray], None],
    ) -> None:
        self.group, self.session, self.chunks, self.stats = group, session, chunks, stats
        self.deliver = deliver
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:  # not root: as much as the system allows
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((group, port))
        self._mreq = socket.inet_aton(group) + socket.inet_aton(local)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._mreq)
        # How long stop() may wait for the thread (a read is not woken by another thread).
        self.sock.settimeout(0.05)
        self.gro = os.environ.get("SLATE_NO_UDP_GRO", "") in ("", "0")  # a diagnostic switch
        if self.gro:
            try:
                self.sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
            except OSError:  # an older kernel: one datagram a read
                self.gro = False
        self.got_bytes = 0  # data datagram bytes of this session received
        self.beacons: list[tuple[float, int, int]] = []  # (time, sent, got_bytes)
        self.last_beacon: float | None = None
        self.ending = False
        self.rate = 0
        self._current = -1  # the chunk the last data datagram was of
        self._active = True  # the newest beacon's state was ACTIVE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomcast-rx", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Leave the group (a snooping switch stops sending it here) and end the thread."""
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, self._mreq)
        self.sock.close()

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

    def _run(self) -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        recv_into, recvmsg_into = self.sock.recv_into, self.sock.recvmsg_into
        while not self._stop.is_set():
            try:
                if self.gro:
                    n, anc, _flags, _addr = recvmsg_into([buf], GRO_CMSG)
                    size = gro_size(anc) or n
                    for off in range(0, n, size):
                        self._datagram(view[off : min(n, off + size)])
                else:
                    self._datagram(view[: recv_into(buf)])
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise

    def _datagram(self, data: memoryview) -> None:
        pkt = roomwire.decode(data)
        if isinstance(pkt, roomwire.Malformed):
            self.stats.dropped_datagrams[pkt.reason] += 1
        elif pkt.session != self.session:
            self.stats.dropped_datagrams["foreign-session"] += 1
        elif isinstance(pkt, roomwire.Beacon):
            self._beacon(pkt)
        else:
            self.got_bytes += len(data)
            self._piece(pkt)

    def _beacon(self, b: roomwire.Beacon) -> None:
        now = time.monotonic()
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

    def _piece(self, d: roomwire.Data) -> None:
        c = self.chunks
        full: bytearray | None = None
        with c.lock:
            if d.chunk != self._current:  # a chunk's send is whole: the last one ended
                c.passed(self._current)
                self._current = d.chunk
            asm = c.assembly(d.chunk, d.frame_len, d.pieces)
            if asm is None:  # out of the table, done already, or never needed here
                self.stats.dropped_datagrams["not-needed"] += 1
                return
            if asm.have[d.piece]:
                return
            start = d.piece * roomwire.PIECE_SIZE
            asm.buf[start : start + len(d.payload)] = d.payload
            asm.have[d.piece] = 1
            asm.got += 1
            asm.top = max(asm.top, d.piece)
            asm.last = time.monotonic()
            if asm.got == asm.pieces:
                c.complete(d.chunk)
                full = asm.buf
        if full is not None:
            self.deliver(d.chunk, full)


class _Aligned(threading.local):
    buf: mmap.mmap | None = None

    def view(self, length: int) -> memoryview:
        if self.buf is None or len(self.buf) < length:
            self.buf = mmap.mmap(-1, max(length, 4096))
        return memoryview(self.buf)[:length]


class Seat:
    """One restore through a room session (see the module's docstring)."""

    def __init__(
        self,
        api: Api,
        job: dict[str, Any],
        manifest: Manifest,
        targets: list[FileTarget],
        reporter: Reporter,
        workers: int,
    ) -> None:
        self.api, self.job, self.manifest = api, job, manifest
        self.targets, self.reporter, self.workers = targets, reporter, workers
        self.store = str(job.get("store") or "/store/")
        self.table = roomwire.chunk_table(manifest)
        self.stats = Stats()
        self.ios = [TargetIo(t.fd, t.open_direct()) for t in targets]
        self.verified = 0
        self._aligned = _Aligned()
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # -- the plan -----------------------------------------------------------------------
    def prepare(self) -> dict[int, list[Placement]]:
        """Zero chunks written (or found zero), the delta check; returns the needs."""
        index = {d: k for k, d in enumerate(self.table)}
        needs: dict[int, list[Placement]] = {}
        fresh = [_fresh(t) for t in self.targets]
        self.reporter.start_phase("restore", sum(d.size for d in self.manifest.disks))
        for t, disk in enumerate(self.manifest.disks):
            target = self.targets[t]
            blank = [i for i, c in enumerate(disk.chunks) if c.digest is None]
            stats = write_chunks(
                target.fd,
                disk,
                lambda digest: b"",  # never called: no data chunk is in ``indices``
                fresh=fresh[t],
                what=self.manifest.ref,
                on_progress=self.reporter.add,
                workers=self.workers,
                indices=blank,
                direct_fd=self.ios[t].direct,
            )
            self.verified += stats.verified
            todo = set(
                missing_chunks(
                    target.fd,
                    disk,
                    fresh=fresh[t],
                    workers=self.workers,
                    direct_fd=self.ios[t].direct,
                )
            )
            for i, c in enumerate(disk.chunks):
                if c.digest is None:
                    continue
                offset, length = disk.chunk_range(i)
                if i in todo:
                    needs.setdefault(index[c.digest], []).append(Placement(t, offset, length))
                else:
                    self.verified += length
                    self.reporter.add(length)
        return needs

    # -- writing a verified chunk ---------------------------------------------------------
    def write(self, k: int, frame: bytes | bytearray | memoryview, chunks: Chunks) -> int:
        """Decode ``frame`` as chunk ``k`` (raises IntegrityError if it is not), write it
        at each of its places; returns the bytes written."""
        places = chunks.placements[k]
        buf = self._aligned.view(places[0].length)
        decode_chunk_into(self.table[k], frame, buf)
        for p in places:
            self.ios[p.target].write(buf, p.offset)
        return sum(p.length for p in places)

    def _from_multicast(self, k: int, frame: bytearray, chunks: Chunks) -> None:
        self._deliver(k, chunks, lambda: frame, http=False)

    def _from_http(self, k: int, chunks: Chunks) -> None:
        self._deliver(k, chunks, lambda: self.api.fetch_chunk_view(self.table[k], self.store))

    def _deliver(
        self,
        k: int,
        chunks: Chunks,
        frame: Callable[[], bytes | bytearray | memoryview],
        *,
        http: bool = True,
    ) -> None:
        """Write chunk ``k`` from ``frame()`` and count it; a multicast frame that does
        not match its name is needed again, any other failure fails the restore."""
        try:
            n = self.write(k, frame(), chunks)
        except BaseException as exc:
            if isinstance(exc, IntegrityError) and not http:
                self.stats.bad += 1  # forged or garbled on the way: needed again
            else:
                self._fail(exc)
            chunks.finish(k, False)
            return
        with self._lock:
            if http:
                self.stats.http_bytes += n
                self.stats.chunks_http += 1
            else:
                self.stats.mcast_bytes += n
                self.stats.chunks_mcast += 1
            self.verified += n
        chunks.finish(k, True)
        self.reporter.add(n)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    # -- the run -------------------------------------------------------------------------
    def run(self) -> int:
        needs = self.prepare()
        chunks = Chunks(needs, _max_partial(self.manifest))
        answer = self._join(chunks)
        start = time.monotonic()
        with (
            ThreadPoolExecutor(2, thread_name_prefix="room-write") as mwrite,
            ThreadPoolExecutor(max(2, self.workers), thread_name_prefix="room-http") as hwrite,
        ):
            if answer is not None:
                self._multicast(answer, chunks, mwrite, hwrite)
            rest = [k for k in chunks.remaining() if chunks.claim(k)]
            if rest:
                self.reporter.log(f"roomcast: {len(rest)} chunks left to fetch by HTTP")
            for f in [hwrite.submit(self._from_http, k, chunks) for k in rest]:
                f.result()
        self._check()
        self.stats.dropped = chunks.dropped
        left = chunks.remaining()
        if left:
            raise SlateError(
                f"{len(left)} chunks of {self.manifest.ref} were not written",
                hint="retry the job; this is a bug if it happens again",
            )
        for t in self.targets:
            t.fsync()
        took = max(time.monotonic() - start, 1e-6)
        s = self.stats
        written = s.mcast_bytes + s.http_bytes
        self.reporter.log(
            f"disks: {self.verified / 2**20:,.0f} MiB verified, {written / 2**20:,.0f} MiB"
            f" written in {took:.1f} s; roomcast: {s.mcast_bytes / 2**20:,.0f} MiB by"
            f" multicast, {s.http_bytes / 2**20:,.0f} MiB by HTTP ({s.chunks_mcast} + "
            f"{s.chunks_http} chunks, {s.lost} pieces repaired, {s.bad} bad chunks, "
            f"{s.dropped} pieces dropped, {sum(s.dropped_datagrams.values())} datagrams"
            " dropped" + _counts(s.dropped_datagrams) + ")"
        )
        return self.verified

    def _join(self, chunks: Chunks) -> dict[str, Any] | None:
        need, _, _ = chunks.report(time.monotonic(), False)
        try:
            answer = self.api.post_json(
                "/room/join",
                {"chunks": len(self.table), "need": roomwire.encode_bitmap(need, len(self.table))},
            )
        except (NotFound, PeerError) as exc:  # an appliance without roomcast, or it refused
            self.reporter.log(f"roomcast: not joining ({exc.message}); restoring by HTTP")
            return None
        if not isinstance(answer, dict) or answer.get("transport") != "multicast":
            why = answer.get("why") if isinstance(answer, dict) else None
            self.reporter.log(f"roomcast: restoring by HTTP ({why or 'the appliance said so'})")
            return None
        return answer

    def _multicast(
        self,
        answer: dict[str, Any],
        chunks: Chunks,
        mwrite: ThreadPoolExecutor,
        hwrite: ThreadPoolExecutor,
    ) -> None:
        sid = int(answer["session"])
        group, port = str(answer["group"]), int(answer["port"])
        self.reporter.log(
            f"roomcast: session {sid:08x} on {group}:{port} at "
            f"{int(answer.get('rate', 0)) / 1e6:.0f} Mbit/s, {chunks.left} chunks needed"
        )
        pending: list[Future[None]] = []

        def deliver(k: int, frame: bytearray) -> None:
            pending.append(mwrite.submit(self._from_multicast, k, frame, chunks))

        rx = Receiver(group, port, _local_address(self.api.host), sid, chunks, self.stats, deliver)
        rx.start()
        joined = time.monotonic()
        why = ""
        self.reporter.carried = True  # the reports carry the job's progress
        try:
            failures = 0
            reported = 0.0
            while not chunks.all_done.is_set():
                chunks.wake.wait(max(REPORT_EVERY - (time.monotonic() - reported), 0.0))
                if chunks.all_done.is_set():
                    break
                gap = REPORT_GAP - (time.monotonic() - reported)
                if gap > 0:
                    time.sleep(gap)
                chunks.wake.clear()
                self._check()
                now = reported = time.monotonic()
                why = _fallback_reason(rx, joined, now, chunks.progress_at)
                if why:
                    break
                try:
                    share = self._report(sid, chunks, rx, now)
                except NotFound:
                    why = "the appliance no longer knows the session (it restarted)"
                    break
                except (Unreachable, OSError) as exc:
                    failures += 1
                    if failures >= 4:
                        why = f"the appliance does not answer reports ({exc})"
                        break
                    continue
                failures = 0
                for k in share:
                    if chunks.claim(k):
                        pending.append(hwrite.submit(self._from_http, k, chunks))
        finally:
            self.reporter.carried = False
            rx.stop()
            for f in list(pending):
                f.result()
        self._check()
        if why:
            self.reporter.log(f"roomcast: going HTTP-only: {why}")
            with contextlib.suppress(SlateError, OSError):
                self._report(sid, chunks, rx, time.monotonic(), why=why)
        with contextlib.suppress(SlateError, OSError):
            self.api.post_json(
                "/room/leave", {"session": sid, "stats": self.stats.report()}, retry=False
            )

    def _report(
        self, sid: int, chunks: Chunks, rx: Receiver, now: float, why: str = ""
    ) -> set[int]:
        seen = rx.seen  # before the snapshot: what it says lost was not in that data
        recent = rx.catch(2.0, now)
        repairs = recent is None or recent[0] >= REPAIR_CATCH
        need, partial, lost = chunks.report(now, repairs)
        self.stats.lost += lost
        self.stats.dropped = chunks.dropped
        window = rx.catch(CATCH_WINDOW, now)
        body = {
            "session": sid,
            "need": roomwire.encode_bitmap(need, len(self.table)),
            "partial": {str(k): v for k, v in partial.items()},
            "stats": self.stats.report(),
            "catch": None if window is None else round(window[0], 3),
            "seen": seen,
            "http_only": bool(why),
            "why": why,
            "progress": self.reporter.snapshot(),
        }
        answer = self.api.post_json("/room/report", body, retry=False)
        return roomwire.decode_bitmap(answer.get("http", ""), len(self.table))


def _fallback_reason(rx: Receiver, joined: float, now: float, progress_at: float) -> str:
    """Why this seat should stop listening to multicast, or ""."""
    hint = "multicast is not reaching this seat: check IGMP snooping and the querier"
    if rx.last_beacon is None:
        if now - joined >= FIRST_BEACON:
            return f"no beacon within {FIRST_BEACON:.0f} s of joining ({hint})"
        return ""
    if now - rx.last_beacon >= BEACONS_LOST:
        return f"no beacon for {now - rx.last_beacon:.0f} s ({hint})"
    if rx.ending:
        return "the appliance ended the session"
    if now - max(joined, progress_at) >= NO_PROGRESS:
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


def gro_size(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The size of each datagram in a coalesced read (the UDP_GRO control message), or
    0 when the read holds one datagram."""
    for level, kind, data in ancdata:
        if level == socket.SOL_UDP and kind == UDP_GRO and len(data) >= 2:
            size = int.from_bytes(data[:4] if len(data) >= 4 else data[:2], sys.byteorder)
            return size if 0 < size <= 65535 else 0
    return 0


def _counts(c: Counter[str]) -> str:
    return (": " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))) if c else ""


def _fresh(target: FileTarget) -> bool:
    from bootimage.client.restore import is_fresh

    return is_fresh(target)


def _local_address(host: str) -> str:
    """This machine's address toward the appliance: the interface to join the group on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return str(s.getsockname()[0])


def _max_partial(manifest: Manifest) -> int:
    """Chunks held in part at once: a quarter of the free memory, 4 to 64 of them."""
    frame = max(d.chunk_size for d in manifest.disks) + 64 * 1024
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        free = 256 * 1024 * 1024
    return max(4, min(64, free // 4 // frame))


def restore_room(
    api: Api,
    job: dict[str, Any],
    manifest: Manifest,
    targets: list[FileTarget],
    reporter: Reporter,
    workers: int,
) -> int:
    """Restore every disk of ``manifest`` onto ``targets`` through the room session (or
    by HTTP when the appliance says so); returns the verified byte count."""
    return Seat(api, job, manifest, targets, reporter, workers).run()
