"""The sender of one room session: the only code that touches its multicast socket.

It asks the session what to send (:meth:`RoomSession.next_send`), reads the chunk's
stored zstd frame (the bytes on the wire are the store's bytes: a seat checks each chunk
against the manifest before writing it), cuts it into datagrams and paces them with a
token bucket at the session's rate — never slower for one slow seat.  Beacons go out
several times a second, also while a long chunk is on its way.

Sends use UDP segmentation offload (``UDP_SEGMENT``: one ``sendto`` hands the kernel up
to :data:`GSO_SEGMENTS` equal datagrams) where the kernel has it, else one ``sendto``
per datagram.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from appliance import metrics
from appliance.formats import roomwire
from appliance.roomcast.session import RoomSession

log = logging.getLogger("slate.roomcast")

UDP_SEGMENT = 103  # linux/udp.h
GSO_SEGMENTS = 40  # 40 x 1468 bytes < 64 KiB, the most one GSO send may carry
WIRE_OVERHEAD = 14 + 20 + 8  # Ethernet, IPv4 and UDP headers: the rate is the link's
BEACON_EVERY = 0.2  # s
IDLE_SLEEP = 0.02  # s between looks at the session when there is nothing to send
END_AFTER_IDLE = 30.0  # s with no live seat: the session ends
FRAME_CACHE = 64 * 1024 * 1024  # bytes of recent frames kept for repairs
BURST_SECONDS = 0.004  # of the rate: see pacer_burst
MIN_BURST = 64 * 1024  # one GSO send
MAX_BURST = 1024 * 1024  # ~1 ms at 10 Gbit/s: no deeper than a NIC's queue holds


def pacer_burst(rate: int) -> int:
    """The token bucket's depth for ``rate`` bit/s: 4 ms of the rate, at least one GSO send
    and at most :data:`MAX_BURST`.

    A bucket one send deep loses every moment the sender thread wakes late (a sleep
    overshoots by ~0.1 ms, another thread holds the GIL): at 1 Gbit/s, where a send of 40
    datagrams lasts 0.5 ms, that held the sender to ~810 of its 1000 Mbit/s; 4 ms of depth
    gets ~960 (bench/room_bench.py, the unshaped row).  The bursts it allows leave at the
    link's own speed, which the seats' ports (as fast) pass on without queueing."""
    return min(MAX_BURST, max(MIN_BURST, int(rate / 8 * BURST_SECONDS)))


class Pacer:
    """A token bucket of ``rate`` bit/s holding at most ``burst`` bytes.

    ``follow``: where the rate comes from (the session's ``rate``, its share of the
    appliance's budget, which changes as other sessions start and end): looked at before
    each send, and a new rate is taken at once (:meth:`set_rate`)."""

    def __init__(
        self,
        rate: int,
        burst: int = 64 * 1024,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        follow: Callable[[], int] | None = None,
    ) -> None:
        self.bits = rate
        self.rate = max(1, rate) / 8.0  # bytes per second
        self.burst = float(burst)
        self.clock, self.sleep = clock, sleep
        self.follow = follow
        self.tokens = self.burst
        self.at = clock()

    def set_rate(self, rate: int, burst: int | None = None) -> None:
        """Pace to ``rate`` bit/s from now on, the bucket ``burst`` bytes deep (default
        :func:`pacer_burst` of the rate).  Tokens earned so far count at the old rate; a
        shallower bucket drops what it no longer holds."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.bits = rate
        self.rate = max(1, rate) / 8.0
        self.burst = float(pacer_burst(rate) if burst is None else burst)
        self.tokens = min(self.tokens, self.burst)

    def take(self, nbytes: int) -> None:
        while True:
            if self.follow is not None and (bits := self.follow()) != self.bits:
                self.set_rate(bits)
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= nbytes or self.tokens >= self.burst:
                self.tokens -= nbytes
                return
            self.sleep((nbytes - self.tokens) / self.rate)


class FrameCache:
    """The stored frames of recently sent chunks (a repair re-reads no file)."""

    def __init__(self, path_of: Callable[[str], Path], limit: int = FRAME_CACHE) -> None:
        self.path_of = path_of
        self.limit = limit
        self._frames: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, digest: str) -> bytes:
        frame = self._frames.get(digest)
        if frame is not None:
            self._frames.move_to_end(digest)
            metrics.count("slate_chunk_cache_requests_total", result="hit")
            return frame
        metrics.count("slate_chunk_cache_requests_total", result="miss")
        frame = self.path_of(digest).read_bytes()
        self._frames[digest] = frame
        self._size += len(frame)
        while self._size > self.limit and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self._size -= len(old)
        return frame


def batches(datagrams: Iterator[bytes], size: int = roomwire.MAX_DATAGRAM) -> Iterator[list[bytes]]:
    """Runs of datagrams one GSO send can carry: all ``size`` long but the last."""
    run: list[bytes] = []
    for d in datagrams:
        run.append(d)
        if len(d) != size or len(run) >= GSO_SEGMENTS:
            yield run
            run = []
    if run:
        yield run


def open_socket(address: str, ttl: int = 1) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
    # A few GSO sends' worth (the kernel doubles it: 512 KiB, ~4 ms at 1 Gbit/s), not
    # 4 MiB: a send then waits while the interface's queue still holds this much of
    # ours, so a session offered more than the link carries is held to the link instead
    # of filling the queue until it drops, unseen (udp sends do not report a qdisc's
    # drops).  Measured on a veth shaped to 50 Mbit/s with a 3 MB queue, two sockets
    # paced at 45 Mbit/s each: 4 MiB offered 87 Mbit/s and the queue dropped 281 GSO
    # sends in 4 s; 256 KiB held them to 50 and dropped none.  Unshaped, a veth frees a
    # send at once: 256 KiB still passes 37 Gbit/s unpaced (the 970 Mbit/s row is the
    # pacer's).  Roomcast's budget keeps the sessions within the link in the first place.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    sock.bind((address, 0))
    return sock


class Sender:
    """Runs one session on its own thread until the session ends or :meth:`stop`."""

    def __init__(
        self,
        session: RoomSession,
        address: str,
        path_of: Callable[[str], Path],
        on_end: Callable[[RoomSession], None] = lambda _s: None,
        status_file: Path | None = None,
    ) -> None:
        self.session = session
        self.status_file = status_file
        self._next_status = 0.0
        self.address = address
        self.frames = FrameCache(path_of)
        self.on_end = on_end
        self.pacer = Pacer(session.rate, pacer_burst(session.rate), follow=lambda: session.rate)
        self._sock = open_socket(address)
        try:
            self._sock.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, roomwire.MAX_DATAGRAM)
            self.gso = True
        except OSError as exc:
            log.info("no UDP segmentation offload here (%s): one send per datagram", exc)
            self.gso = False
        self.seq = 0  # the beacons' sequence number: a seat believes only a newer one
        self.data_seq = 0  # the data datagrams' (a replayed one shows itself by it)
        self.datagrams = 0
        self._next_beacon = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"roomcast-{session.id:08x}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        s = self.session
        log.info(
            "roomcast session %08x: %s@%s, %d chunks to %s:%d at %.0f Mbit/s",
            s.id, s.image, s.version, s.chunks, s.group, s.port, s.rate / 1e6,
        )  # fmt: skip
        try:
            state = roomwire.ACTIVE
            while not self._stop.is_set():
                self._status_if_due()
                self._beacon_if_due(state)
                pick = s.next_send()
                if pick.chunk is None:
                    if s.idle_for() > END_AFTER_IDLE:
                        break
                    # Said at once: a seat missing pieces of the last chunk sent then
                    # knows they are lost and asks for them now, not 0.3 s later.
                    self._beacon_if_due(roomwire.IDLE, force=state != roomwire.IDLE)
                    state = roomwire.IDLE
                    self._stop.wait(IDLE_SLEEP)
                    continue
                state = roomwire.ACTIVE
                self._send_chunk(pick.chunk, pick.pieces)
        except Exception:
            log.exception("roomcast session %08x failed; its seats finish by HTTP", s.id)
        finally:
            for _ in range(3):  # tell the seats, in case one of them still listens
                end = roomwire.encode_beacon(
                    s.wire_key, s.id, self._seq(), s.rate, s.sent_bytes, s.chunks, s.cursor,
                    roomwire.ENDING,
                )  # fmt: skip
                self._send([end], data=False)
            self._sock.close()
            s.ended = True
            self._status_if_due(force=True)
            log.info(
                "roomcast session %08x ended: %d chunks, %d repairs, %.1f MiB sent",
                s.id, s.sent_chunks, s.sent_repairs, s.sent_bytes / 2**20,
            )  # fmt: skip
            self.on_end(s)

    def _status_if_due(self, force: bool = False) -> None:
        """The session's status as a JSON file, once a second (``slate room status``)."""
        now = time.monotonic()
        if self.status_file is None or (now < self._next_status and not force):
            return
        self._next_status = now + 1.0
        status = {**self.session.status(), "ended": self.session.ended, "gso": self.gso}
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=1))
            tmp.replace(self.status_file)
        except OSError as exc:
            log.warning("roomcast status %s not written: %s", self.status_file, exc)

    def _seq(self) -> int:
        self.seq += 1
        return self.seq

    def _beacon_if_due(self, state: int, *, force: bool = False) -> None:
        t = time.monotonic()
        if t < self._next_beacon and not force:
            return
        self._next_beacon = t + BEACON_EVERY
        s = self.session
        beacon = roomwire.encode_beacon(
            s.wire_key, s.id, self._seq(), s.rate, s.sent_bytes, s.chunks, s.cursor, state
        )
        self.pacer.take(len(beacon) + WIRE_OVERHEAD)
        self._send([beacon], data=False)

    def _send_chunk(self, chunk: int, pieces: frozenset[int] | None) -> None:
        s = self.session
        frame = self.frames.get(s.table[chunk])
        grams = roomwire.encode_pieces(s.wire_key, s.id, chunk, frame, pieces, seq=self.data_seq)
        for run in batches(grams):
            self.data_seq += len(run)
            self.pacer.take(sum(len(d) for d in run) + WIRE_OVERHEAD * len(run))
            self._send(run)
            self._beacon_if_due(roomwire.ACTIVE)
            if self._stop.is_set():
                return
        s.sent_out(chunk)
        self._beacon_if_due(roomwire.ACTIVE, force=True)  # the seats' next reports know it is out

    def _send(self, run: list[bytes], *, data: bool = True) -> None:
        dest = (self.session.group, self.session.port)
        nbytes = sum(len(d) for d in run)
        if self.gso and len(run) > 1:
            try:
                self._sock.sendto(b"".join(run), dest)
                self._sent(run, nbytes, data)
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the queue is full: the seats repair it
                    self._sent(run, nbytes, data)
                    return
                if exc.errno not in (errno.EINVAL, errno.ENOPROTOOPT, errno.EIO, errno.EOPNOTSUPP):
                    raise
                log.info("no UDP segmentation offload here (%s): one send per datagram", exc)
                self.gso = False
        for d in run:
            try:
                self._sock.sendto(d, dest)
            except OSError as exc:  # ENOBUFS: the queue is full; the seats repair it
                if exc.errno != errno.ENOBUFS:
                    raise
        self._sent(run, nbytes, data)

    def _sent(self, run: list[bytes], nbytes: int, data: bool) -> None:
        self.datagrams += len(run)
        if data:  # what beacons report as sent: data bytes only, as seats count them
            self.session.count_sent(nbytes)
