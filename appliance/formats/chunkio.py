"""Reading and writing chunk streams: the one place where disk bytes become chunks and
chunks become disk bytes again.  Used by ``slate image import/export/verify`` and,
unchanged, by the restore/capture client in the boot environment, so: stdlib +
``zstandard`` only, no server code.

Work is spread over threads: ``os.pread``/``os.pwrite``, ``hashlib`` and ``zstandard``
all release the GIL, so hashing, (de)compression and I/O of different chunks overlap.
Results come back in chunk order with a bounded number of chunks in flight (memory
stays at a few chunks per worker).
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import zstandard

from appliance.errors import IntegrityError, SlateError
from appliance.formats.manifest import UNUSED, ZERO, Chunk, Disk

# Chosen by bench/image_bench.py; see docs/image-format.md.
DEFAULT_LEVEL = 3

_local = threading.local()
_zeros: dict[int, bytes] = {}

ReadFn = Callable[[int, int], bytes]
T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    # One more than the cores: while one thread waits on I/O the cores stay busy.
    return max(2, min(cpus + 1, 16))


def hash_chunk(data: bytes | memoryview) -> str:
    """The chunk's name: sha256 hex of its uncompressed bytes."""
    return hashlib.sha256(data).hexdigest()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # ZstdCompressor objects must not be shared between threads at the same time.
    cache: dict[int, zstandard.ZstdCompressor] = getattr(_local, "cctx", None) or {}
    _local.cctx = cache
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def compress_chunk(data: bytes | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    """One zstd frame (with its content size) holding ``data``."""
    return _compressor(level).compress(data)


_DAMAGED_HINT = "run `slate image verify` to list damaged chunks and the versions using them"


def decode_chunk(digest: str, frame: bytes | memoryview, length: int) -> bytes:
    """Decompress a stored frame and check it is exactly the chunk named ``digest`` of
    ``length`` bytes.  Raises IntegrityError naming the chunk otherwise."""
    try:
        data = _decompressor().decompress(frame, max_output_size=length)
    except zstandard.ZstdError as exc:
        raise _damaged(digest, f"it does not decompress ({exc})") from exc
    _check(digest, data, length)
    return data


def decode_chunk_into(digest: str, frame: bytes | bytearray | memoryview, out: memoryview) -> None:
    """:func:`decode_chunk` into ``out`` (exactly the chunk's length): no new buffer per
    chunk, so a restore does not pay a page fault for every page of every chunk."""
    length = len(out)
    got = 0
    try:
        reader = _decompressor().stream_reader(frame)
        while got < length:
            n = reader.readinto(out[got:])
            if not n:
                break
            got += n
        longer = got == length and bool(reader.read(1))
    except zstandard.ZstdError as exc:
        raise _damaged(digest, f"it does not decompress ({exc})") from exc
    if longer:
        raise _damaged(digest, f"more than {length} bytes")
    _check(digest, out[:got], length)


def _check(digest: str, data: bytes | memoryview, length: int) -> None:
    if len(data) != length:
        raise _damaged(digest, f"{len(data)} bytes instead of {length}")
    if hash_chunk(data) != digest:
        raise _damaged(digest, "its content does not match its name")


def _damaged(digest: str, why: str) -> IntegrityError:
    return IntegrityError(f"chunk {digest} is damaged: {why}", hint=_DAMAGED_HINT)


def zeros(length: int) -> bytes:
    z = _zeros.get(length)
    if z is None:
        z = _zeros[length] = bytes(length)
    return z


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    # A memcmp against a cached zero buffer runs at memory speed.  Not ``data == ...``:
    # comparing a memoryview goes element by element (~100x slower); bytes.startswith
    # takes any buffer and is one memcmp.
    return zeros(len(data)).startswith(data)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, window: int = 0
) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in order, at most ``window``
    (default 2 per worker) in flight.  A wider window keeps the workers busy while the
    oldest call is slow (a retransmitted download); use it when results are small.
    The first exception is raised after the running calls finish."""
    workers = workers or default_workers()
    window = max(window, workers) if window else 2 * workers
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="chunkio") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Encoded:
    """One chunk of a source: its manifest entry, and the compressed bytes that were
    stored for it (0 when its name was already known, or for zero chunks)."""

    index: int
    offset: int
    length: int
    chunk: Chunk
    stored: int = 0


class Extents:
    """Sorted, non-overlapping (offset, length) ranges that may hold data; outside
    them a source reads as zeros (holes of a sparse file, unallocated qcow2 clusters)."""

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for off, length in sorted(r for r in ranges if r[1] > 0):
            if merged and off <= merged[-1][0] + merged[-1][1]:
                last_off, last_len = merged[-1]
                merged[-1] = (last_off, max(last_len, off + length - last_off))
            else:
                merged.append((off, length))
        self.ranges = merged
        self._starts = [r[0] for r in merged]

    def overlaps(self, offset: int, length: int) -> bool:
        i = bisect.bisect_right(self._starts, offset + length - 1) - 1
        return i >= 0 and self.ranges[i][0] + self.ranges[i][1] > offset

    @property
    def total(self) -> int:
        return sum(r[1] for r in self.ranges)


def encode_chunks(
    read: ReadFn,
    size: int,
    chunk_size: int,
    *,
    extents: Extents | None = None,
    need: Callable[[str], bool] = lambda digest: True,
    sink: Callable[[str, bytes], object] | None = None,
    level: int = DEFAULT_LEVEL,
    workers: int | None = None,
    hole: Chunk = ZERO,
) -> Iterator[Encoded]:
    """Cut a source of ``size`` bytes into chunks, in order.

    For each chunk (in worker threads): read it with ``read(offset, length)`` (must be
    thread-safe, e.g. ``os.pread``) unless ``extents`` says it is a hole (then it is
    ``hole``: zero, or unused for free filesystem blocks); all-zero →
    ``zero``; else hash it, and when ``need(digest)`` compress it and hand the frame to
    ``sink(digest, frame)`` (e.g. a store write or an upload).
    """

    def one(index: int) -> Encoded:
        offset = index * chunk_size
        length = min(chunk_size, size - offset)
        if extents is not None and not extents.overlaps(offset, length):
            return Encoded(index, offset, length, hole)
        data = read(offset, length)
        if len(data) != length:
            raise SlateError(
                f"the source ended early: {len(data)} of {length} bytes at offset {offset}",
                hint="the source shrank or is being written to; import from a quiet source",
            )
        if is_zero(data):
            return Encoded(index, offset, length, ZERO)
        digest = hash_chunk(data)
        stored = 0
        if need(digest):
            frame = compress_chunk(data, level)
            if sink is not None:
                sink(digest, frame)
            stored = len(frame)
        return Encoded(index, offset, length, Chunk("hash", digest), stored)

    count = -(-size // chunk_size)
    return ordered_map(one, range(count), workers)


def pread_fn(fd: int) -> ReadFn:
    """A thread-safe reader of an open file descriptor (short reads retried)."""

    def read(offset: int, length: int) -> bytes:
        data = os.pread(fd, length, offset)
        if len(data) == length or not data:
            return data
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(fd, length - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    return read


# ----------------------------------------------------------------------------- writing

# O_DIRECT needs the buffer, the offset and the length aligned to the device's logical
# block; 4096 covers 512-byte and 4Kn disks and the block size of common filesystems.
DIRECT_ALIGN = 4096


@dataclass
class WriteStats:
    written: int = 0  # bytes written to the target
    verified: int = 0  # bytes whose content was checked (hash or zero)
    skipped: int = 0  # bytes left alone (holes, unused, already right)


class _Scratch(threading.local):
    """One page-aligned buffer per worker thread, reused for every chunk it handles."""

    buf: mmap.mmap | None = None

    def view(self, length: int) -> memoryview:
        if self.buf is None or len(self.buf) < length:
            self.buf = mmap.mmap(-1, max(length, DIRECT_ALIGN))
        return memoryview(self.buf)[:length]


class TargetIo:
    """Positional reads and writes of a target: through ``direct`` (an O_DIRECT
    descriptor of the same file, bypassing the page cache) when the range is aligned,
    else through the buffered ``fd``.  A kernel or filesystem that refuses direct I/O
    (EINVAL) turns it off for the rest of the run."""

    def __init__(self, fd: int, direct: int | None) -> None:
        self.fd, self.direct = fd, direct

    def _fd(self, offset: int, length: int) -> int:
        d = self.direct
        if d is not None and offset % DIRECT_ALIGN == 0 and length % DIRECT_ALIGN == 0:
            return d
        return self.fd

    def _retry_buffered(self, fd: int, exc: OSError) -> bool:
        if fd == self.direct and exc.errno == errno.EINVAL:
            self.direct = None
            return True
        return False

    def read_into(self, view: memoryview, offset: int) -> None:
        fd = self._fd(offset, len(view))
        try:
            got = 0
            while got < len(view):
                n = os.preadv(fd, [view[got:]], offset + got)
                if not n:
                    raise SlateError(
                        f"the target ended at {offset + got} bytes",
                        hint="the target disk is smaller than it claimed; check it",
                    )
                got += n
        except OSError as exc:
            if not self._retry_buffered(fd, exc):
                raise
            self.read_into(view, offset)

    def write(self, view: memoryview, offset: int) -> None:
        fd = self._fd(offset, len(view))
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + done)
        except OSError as exc:
            if not self._retry_buffered(fd, exc):
                raise
            self.write(view, offset)


def write_chunks(
    fd: int,
    disk: Disk,
    fetch: Callable[[str], bytes | bytearray | memoryview],
    *,
    fresh: bool,
    compare: bool = False,
    what: str = "the image",
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    indices: Sequence[int] | None = None,
    direct_fd: int | None = None,
) -> WriteStats:
    """Write ``disk`` to the open target ``fd``: every data chunk is fetched
    (``fetch(digest) -> zstd frame``, called in worker threads; the buffer it returns
    is only read before that thread's next call), decompressed and verified before its
    ``pwrite``.

    ``fresh``: the target is a new file already truncated to the disk size, so zero and
    unused chunks stay holes.  Otherwise zero chunks are read back and written as zeros
    unless already zero.  ``compare``: skip data chunks whose bytes on the target already
    hash right (delta restore / resume).  ``direct_fd``: an ``O_DIRECT`` descriptor of
    the same target for aligned chunks (no page-cache copy; the caller still fsyncs).
    Errors name the chunk, ``what`` and the offset.
    """
    stats = WriteStats()
    lock = threading.Lock()
    io = TargetIo(fd, direct_fd)
    scratch = _Scratch()

    def one(i: int) -> int:
        chunk = disk.chunks[i]
        offset, length = disk.chunk_range(i)
        try:
            written, verified = _write_one(
                io, scratch.view(length), chunk, offset, fetch, fresh, compare
            )
        except (SlateError, OSError) as exc:
            raise _chunk_error(exc, chunk, what, disk.index, offset) from exc
        with lock:
            stats.written += written
            stats.verified += verified
            stats.skipped += length - written
        return length

    # Results are bare lengths (each worker stages chunks in its own buffer): a wide
    # window costs no memory and one slow chunk does not idle the other workers.
    todo = indices if indices is not None else range(disk.chunk_count)
    for length in ordered_map(one, todo, workers, window=64):
        if on_progress is not None:
            on_progress(length)
    return stats


def _write_one(
    io: TargetIo,
    buf: memoryview,
    chunk: Chunk,
    offset: int,
    fetch: Callable[[str], bytes | bytearray | memoryview],
    fresh: bool,
    compare: bool,
) -> tuple[int, int]:
    """(bytes written, bytes verified) for one chunk, staged in ``buf`` (its length)."""
    length = len(buf)
    if chunk == UNUSED:
        return 0, 0
    if chunk == ZERO:
        if fresh:
            return 0, length
        io.read_into(buf, offset)
        if is_zero(buf):
            return 0, length
        buf[:] = zeros(length)  # staged in the aligned buffer: direct I/O stays possible
        io.write(buf, offset)
        return length, length
    assert chunk.digest is not None
    if compare:
        io.read_into(buf, offset)
        # A data chunk is never all zeros (those are stored as `zero`), so a zeroed area
        # of the disk (a new or wiped disk) is told apart by a memcmp, without a hash.
        if not is_zero(buf) and hash_chunk(buf) == chunk.digest:
            return 0, length
    decode_chunk_into(chunk.digest, fetch(chunk.digest), buf)
    io.write(buf, offset)
    return length, length


def missing_chunks(
    fd: int,
    disk: Disk,
    *,
    fresh: bool,
    workers: int | None = None,
    direct_fd: int | None = None,
) -> list[int]:
    """Indices of ``disk``'s data chunks whose bytes on the target are not already
    right (every one on a ``fresh`` file): what a restore still has to fetch."""
    data = [i for i, c in enumerate(disk.chunks) if c.digest is not None]
    if fresh:
        return data
    io = TargetIo(fd, direct_fd)
    scratch = _Scratch()

    def right(i: int) -> bool:
        offset, length = disk.chunk_range(i)
        buf = scratch.view(length)
        io.read_into(buf, offset)
        return not is_zero(buf) and hash_chunk(buf) == disk.chunks[i].digest

    return [
        i
        for i, ok in zip(data, ordered_map(right, data, workers, window=64), strict=True)
        if not ok
    ]


def _chunk_error(exc: Exception, chunk: Chunk, what: str, disk: int, offset: int) -> SlateError:
    name = chunk.digest or chunk.kind
    where = f"chunk {name} of {what} (disk {disk}, offset {offset})"
    if isinstance(exc, IntegrityError):
        detail = str(exc).replace(f"chunk {name} ", "", 1)
        return IntegrityError(f"{where} {detail}", hint=exc.hint)
    if isinstance(exc, SlateError):
        return type(exc)(f"{where}: {exc}", hint=exc.hint)
    return SlateError(f"{where}: {exc}", hint="check the target disk and the store")
