"""Roomcast's seat: restore the job's version with the room's multicast session, and
whatever multicast does not bring by HTTP — the orchestration.

The plan of one restore: zero chunks are written (or checked) locally; the data chunks
already right on the disk are kept (the delta check); the rest are the *needs*, named by
their index in the session's chunk table (:func:`appliance.formats.roomwire.chunk_table`).
The seat joins with its needs and receives the session's key; the socket loop
(:mod:`bootimage.client.roomrx`) feeds every datagram to the seat's state
(:mod:`bootimage.client.roomseat`: authentication, assembly, loss, fallback reasons,
no I/O); a complete frame is decompressed and checked against the manifest's SHA-256
before it is written at the manifest's offsets, exactly as an HTTP chunk is.  About once
a second the seat reports what it still needs and which pieces it lost; the answer names
the chunks to fetch by HTTP meanwhile (those no other seat needs).

Multicast is an accelerator: the seat goes HTTP-only — says why in the job log — when no
authentic beacon comes within 3 s of the join, when they stop for 5 s, when it catches
too little of what is sent (a slow link), or when the session ends; then it fetches
what is left by HTTP.  Forged datagrams are dropped and counted, never believed.  A
chunk whose bytes do not match its name is dropped and needed again.  Nothing is ever
written that was not verified.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from appliance.errors import IntegrityError, NotFound, PeerError, SlateError
from appliance.formats import roomwire
from appliance.formats.chunkio import TargetIo, decode_chunk_into, missing_chunks, write_chunks
from appliance.formats.manifest import Manifest
from bootimage.client.api import Api, Unreachable
from bootimage.client.progress import Reporter
from bootimage.client.roomrx import Receiver
from bootimage.client.roomseat import (
    CATCH_WINDOW,
    REPAIR_CATCH,
    REPORT_EVERY,
    REPORT_GAP,
    Chunks,
    Listener,
    Placement,
    Stats,
    fallback_reason,
)
from bootimage.client.target import FileTarget, is_fresh


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
        fresh = [is_fresh(t) for t in self.targets]
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
            chunks.finish(k, False, time.monotonic())
            return
        with self._lock:
            if http:
                self.stats.http_bytes += n
                self.stats.chunks_http += 1
            else:
                self.stats.mcast_bytes += n
                self.stats.chunks_mcast += 1
            self.verified += n
        chunks.finish(k, True, time.monotonic())
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
        if s.forged:
            self.reporter.log(
                f"roomcast: {s.forged} forged datagrams on the group were dropped, from "
                + ", ".join(s.sources())
                + " (none was believed: each failed the session's key or was a replay)"
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

        key = roomwire.SessionKey.from_hex(answer.get("key"))
        local = _local_address(self.api.host)
        rx = Listener(sid, key, chunks, self.stats)
        sock = Receiver(group, port, local, rx, deliver)
        sock.start()
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
                why = fallback_reason(rx, joined, now, chunks.progress_at)
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
            sock.stop()
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
        self, sid: int, chunks: Chunks, rx: Listener, now: float, why: str = ""
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
            "forgers": self.stats.sources(),
            "catch": None if window is None else round(window[0], 3),
            "seen": seen,
            "http_only": bool(why),
            "why": why,
            "progress": self.reporter.snapshot(),
        }
        answer = self.api.post_json("/room/report", body, retry=False)
        return roomwire.decode_bitmap(answer.get("http", ""), len(self.table))


def _counts(c: Counter[str]) -> str:
    return (": " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))) if c else ""


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
