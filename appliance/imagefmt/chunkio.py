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
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import zstandard

from appliance.errors import IntegrityError, SlateError
from appliance.imagefmt.manifest import UNUSED, ZERO, Chunk, Disk

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


def decode_chunk(digest: str, frame: bytes, length: int) -> bytes:
    """Decompress a stored frame and check it is exactly the chunk named ``digest`` of
    ``length`` bytes.  Raises IntegrityError naming the chunk otherwise."""
    try:
        data = _decompressor().decompress(frame, max_output_size=length)
    except zstandard.ZstdError as exc:
        raise IntegrityError(
            f"chunk {digest} is damaged: it does not decompress ({exc})",
            hint="run `slate image verify` to list damaged chunks and the versions using them",
        ) from exc
    if len(data) != length:
        raise IntegrityError(
            f"chunk {digest} is damaged: {len(data)} bytes instead of {length}",
            hint="run `slate image verify` to list damaged chunks and the versions using them",
        )
    if hash_chunk(data) != digest:
        raise IntegrityError(
            f"chunk {digest} is damaged: its content does not match its name",
            hint="run `slate image verify` to list damaged chunks and the versions using them",
        )
    return data


def zeros(length: int) -> bytes:
    z = _zeros.get(length)
    if z is None:
        z = _zeros[length] = bytes(length)
    return z


def is_zero(data: bytes | memoryview) -> bool:
    # A memcmp against a cached zero buffer runs at memory speed.
    return data == zeros(len(data))


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None
) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in order, at most ~2 per worker in
    flight.  The first exception is raised after the running calls finish."""
    workers = workers or default_workers()
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="chunkio") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
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
) -> Iterator[Encoded]:
    """Cut a source of ``size`` bytes into chunks, in order.

    For each chunk (in worker threads): read it with ``read(offset, length)`` (must be
    thread-safe, e.g. ``os.pread``) unless ``extents`` says it is a hole; all-zero →
    ``zero``; else hash it, and when ``need(digest)`` compress it and hand the frame to
    ``sink(digest, frame)`` (e.g. a store write or an upload).
    """

    def one(index: int) -> Encoded:
        offset = index * chunk_size
        length = min(chunk_size, size - offset)
        if extents is not None and not extents.overlaps(offset, length):
            return Encoded(index, offset, length, ZERO)
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


@dataclass
class WriteStats:
    written: int = 0  # bytes written to the target
    verified: int = 0  # bytes whose content was checked (hash or zero)
    skipped: int = 0  # bytes left alone (holes, unused, already right)


def write_chunks(
    fd: int,
    disk: Disk,
    fetch: Callable[[str], bytes],
    *,
    fresh: bool,
    compare: bool = False,
    what: str = "the image",
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    indices: Sequence[int] | None = None,
) -> WriteStats:
    """Write ``disk`` to the open target ``fd``: every data chunk is fetched
    (``fetch(digest) -> zstd frame``, called in worker threads), decompressed and
    verified before its ``pwrite``.

    ``fresh``: the target is a new file already truncated to the disk size, so zero and
    unused chunks stay holes.  Otherwise zero chunks are read back and written as zeros
    unless already zero.  ``compare``: skip data chunks whose bytes on the target already
    hash right (delta restore / resume).  Errors name the chunk, ``what`` and the offset.
    """
    stats = WriteStats()
    lock = threading.Lock()
    read = pread_fn(fd)

    def one(i: int) -> int:
        chunk = disk.chunks[i]
        offset, length = disk.chunk_range(i)
        try:
            written, verified = _write_one(fd, read, chunk, offset, length, fetch, fresh, compare)
        except (SlateError, OSError) as exc:
            raise _chunk_error(exc, chunk, what, disk.index, offset) from exc
        with lock:
            stats.written += written
            stats.verified += verified
            stats.skipped += length - written
        return length

    for length in ordered_map(
        one, indices if indices is not None else range(disk.chunk_count), workers
    ):
        if on_progress is not None:
            on_progress(length)
    return stats


def _write_one(
    fd: int,
    read: ReadFn,
    chunk: Chunk,
    offset: int,
    length: int,
    fetch: Callable[[str], bytes],
    fresh: bool,
    compare: bool,
) -> tuple[int, int]:
    """(bytes written, bytes verified) for one chunk."""
    if chunk == UNUSED:
        return 0, 0
    if chunk == ZERO:
        if fresh or is_zero(read(offset, length)):
            return 0, length
        os.pwrite(fd, zeros(length), offset)
        return length, length
    assert chunk.digest is not None
    if compare and hash_chunk(read(offset, length)) == chunk.digest:
        return 0, length
    data = decode_chunk(chunk.digest, fetch(chunk.digest), length)
    view = memoryview(data)
    done = 0
    while done < length:
        done += os.pwrite(fd, view[done:], offset + done)
    return length, length


def _chunk_error(exc: Exception, chunk: Chunk, what: str, disk: int, offset: int) -> SlateError:
    name = chunk.digest or chunk.kind
    where = f"chunk {name} of {what} (disk {disk}, offset {offset})"
    if isinstance(exc, IntegrityError):
        detail = str(exc).replace(f"chunk {name} ", "", 1)
        return IntegrityError(f"{where} {detail}", hint=exc.hint)
    if isinstance(exc, SlateError):
        return type(exc)(f"{where}: {exc}", hint=exc.hint)
    return SlateError(f"{where}: {exc}", hint="check the target disk and the store")
