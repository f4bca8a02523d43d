"""partclone's image format (version 0002), read in pure Python.

An image is a 110-byte header (``image_desc_v2`` of partclone's ``partclone.h``: magic
``partclone-image``, the filesystem's block size and block count, the checksum mode and
how many blocks share one checksum, and a CRC32 of the header), the block bitmap (one
bit per block, least significant bit first) followed by its CRC32, then the used blocks
in order, a checksum after every ``blocks_per_checksum`` blocks and after the last
(partial) group.  partclone's CRC32 is the usual reflected polynomial with seed
0xFFFFFFFF and no final inversion, i.e. ``~zlib.crc32(data, ~seed)``; with "reseed"
each group starts from the seed again (partclone's ``main.c``, the clone loop).

:func:`read_image` checks all of it while it writes every used block at its offset
into a (sparse) file, and returns the used byte ranges: blocks the bitmap marks free
are never written, and become ``unused`` chunks at import.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from appliance.errors import IntegrityError

MAGIC = b"partclone-image\0"
HEADER_SIZE = 110
CSM_NONE, CSM_CRC32 = 0x00, 0x20
BM_BIT = 0x01
_HEAD = struct.Struct("<16s14s4sH16sQQQQIIHHHHIBBI")
assert _HEAD.size == HEADER_SIZE
_BUFFER_BLOCKS_BYTES = 4 << 20
_SET = re.compile(rb"\xff+|[^\x00\xff]")

Writer = Callable[[int, bytes], object]  # (offset, data)


@dataclass(frozen=True)
class Header:
    fs: str  # partclone's name: EXTFS, FAT, NTFS, ...
    version: str  # of partclone that wrote it, e.g. "0.3.23"
    device_size: int  # bytes of the source partition
    total_blocks: int
    used_blocks: int
    block_size: int
    checksum_mode: int
    checksum_size: int
    blocks_per_checksum: int
    reseed: bool

    @property
    def fs_size(self) -> int:
        return self.total_blocks * self.block_size


def _crc(data: bytes | memoryview, seed: int = 0xFFFFFFFF) -> int:
    return ~zlib.crc32(data, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF


def is_partclone(head: bytes) -> bool:
    return head[:16] == MAGIC


def parse_header(raw: bytes, name: str) -> Header:
    if len(raw) < HEADER_SIZE or raw[:16] != MAGIC:
        raise IntegrityError(f"{name} is not a partclone image (no partclone-image header)")
    f = _HEAD.unpack_from(raw)
    if f[2] != b"0002":
        raise IntegrityError(
            f"{name} is a partclone image of format {f[2].decode('ascii', 'replace')!r};"
            " only format 0002 (partclone 0.2.x and later) is read",
            hint="restore it with the partclone that wrote it and import the disk",
        )
    if f[3] != 0xC0DE:
        raise IntegrityError(f"{name}: a big-endian partclone image is not supported")
    if _crc(raw[: HEADER_SIZE - 4]) != f[18]:
        raise IntegrityError(f"{name} is damaged: the partclone header's checksum is wrong")
    hdr = Header(
        fs=f[4].rstrip(b"\0").decode("ascii", "replace"),
        version=f[1].rstrip(b"\0").decode("ascii", "replace"),
        device_size=f[5],
        total_blocks=f[6],
        used_blocks=f[8],
        block_size=f[9],
        checksum_mode=f[13],
        checksum_size=f[14],
        blocks_per_checksum=f[15],
        reseed=bool(f[16]),
    )
    if f[17] != BM_BIT:
        raise IntegrityError(f"{name}: partclone bitmap mode {f[17]} is not supported")
    if hdr.checksum_mode not in (CSM_NONE, CSM_CRC32):
        raise IntegrityError(
            f"{name}: partclone checksum mode {hdr.checksum_mode:#x} is not supported"
            " (CRC32 and none are)"
        )
    if hdr.checksum_mode == CSM_CRC32 and (hdr.checksum_size != 4 or not hdr.blocks_per_checksum):
        raise IntegrityError(f"{name} is damaged: inconsistent partclone checksum settings")
    if not 512 <= hdr.block_size <= 64 << 20 or hdr.fs_size > hdr.device_size:
        raise IntegrityError(
            f"{name} is damaged: {hdr.total_blocks} blocks of {hdr.block_size} bytes"
            f" do not fit the {hdr.device_size}-byte partition it claims"
        )
    return hdr


def _read_exact(stream: BinaryIO, n: int, name: str, what: str) -> bytes:
    parts = []
    got = 0
    while got < n:
        try:
            data = stream.read(n - got)
        except (EOFError, OSError, ValueError) as exc:  # gzip/xz/zstd: truncated or damaged
            raise IntegrityError(
                f"{name} is truncated or damaged (while reading {what}): {exc}",
                hint="copy the image again; a split image needs all of its parts",
            ) from exc
        if not data:
            raise IntegrityError(
                f"{name} is truncated: it ends inside {what}",
                hint="copy the image again; a split image needs all of its parts",
            )
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def read_header(stream: BinaryIO, name: str) -> Header:
    return parse_header(_read_exact(stream, HEADER_SIZE, name, "the header"), name)


def read_image(
    stream: BinaryIO, name: str, write: Writer, header: Header | None = None
) -> tuple[Header, list[tuple[int, int]]]:
    """Read a whole partclone image from ``stream`` (after its header when ``header`` is
    given), calling ``write(offset, data)`` for runs of used blocks (offsets relative to
    the partition's start).  Returns the header and the used (offset, length) ranges.
    Any damage (header, bitmap or block checksum, truncation, trailing data) raises
    IntegrityError naming ``name``."""
    hdr = header or read_header(stream, name)
    bs = hdr.block_size
    bitmap = _read_exact(stream, (hdr.total_blocks + 7) // 8, name, "the block bitmap")
    (bm_crc,) = struct.unpack("<I", _read_exact(stream, 4, name, "the bitmap checksum"))
    if _crc(bitmap) != bm_crc:
        raise IntegrityError(f"{name} is damaged: the partclone bitmap's checksum is wrong")
    runs = _used_runs(bitmap, hdr.total_blocks)
    used = sum(n for _, n in runs)
    if used != hdr.used_blocks:
        raise IntegrityError(
            f"{name} is damaged: its bitmap marks {used} blocks used, its header {hdr.used_blocks}"
        )
    per_cs = hdr.blocks_per_checksum if hdr.checksum_mode == CSM_CRC32 else 0
    seed = 0xFFFFFFFF
    crc = seed
    in_group = 0
    done = 0
    step = max(1, _BUFFER_BLOCKS_BYTES // bs)
    for first, count in runs:
        pos = 0
        while pos < count:
            n = min(step, count - pos)
            if per_cs:
                n = min(n, per_cs - in_group)  # a read ends where a checksum follows
            data = _read_exact(stream, n * bs, name, f"block {first + pos}")
            if per_cs:
                crc = _crc(data, crc)
                in_group += n
                if in_group == per_cs:
                    _check_group(stream, name, crc, first + pos + n - 1)
                    in_group = 0
                    if hdr.reseed:
                        crc = seed
            write((first + pos) * bs, data)
            pos += n
            done += n
    if per_cs and in_group:
        _check_group(stream, name, crc, done and runs[-1][0] + runs[-1][1] - 1)
    if stream.read(1):
        raise IntegrityError(f"{name} is damaged: data follows the last block of the image")
    return hdr, [(first * bs, count * bs) for first, count in runs]


def _check_group(stream: BinaryIO, name: str, crc: int, last_block: int) -> None:
    (want,) = struct.unpack("<I", _read_exact(stream, 4, name, "a block checksum"))
    if want != crc:
        raise IntegrityError(
            f"{name} is damaged: the checksum of the blocks up to block {last_block} is wrong",
            hint="the image file was altered or badly copied; copy it again from its origin",
        )


def _used_runs(bitmap: bytes, total: int) -> list[tuple[int, int]]:
    """(first block, count) of each run of set bits, least significant bit first."""
    runs: list[list[int]] = []

    def add(start: int, count: int) -> None:
        if runs and runs[-1][0] + runs[-1][1] == start:
            runs[-1][1] += count
        else:
            runs.append([start, count])

    for m in _SET.finditer(bitmap):
        byte = m.start()
        if m.group()[0] == 0xFF:
            add(byte * 8, 8 * (m.end() - byte))
            continue
        value = m.group()[0]
        for bit in range(8):
            if value >> bit & 1:
                add(byte * 8 + bit, 1)
    out = []
    for start, count in runs:  # bits past the last block are not blocks
        count = min(count, total - start)
        if count > 0:
            out.append((start, count))
    return out
