"""Kept partitions: "keep partition N" (a rule per image or room) leaves partition N of
the first disk as it is, restore after restore — a data partition that survives
restore-every-boot.

It is kept only when the disk's partition table already has partition N with the
image's start, size and type; otherwise the job fails before a byte is written, naming
the mismatch (a kept partition is never destroyed silently, and one that no longer fits
is never kept).  A disk with no partition table at all (a new disk) has nothing to keep:
it gets the whole image, and the log says so.

The write skips every chunk inside a kept partition (``mask``); a chunk that straddles
its edge is written afterwards by ``write_edges``: fetched, verified against its name,
and only its bytes outside the kept partition are written.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.errors import DiskRefused
from appliance.formats import partitions
from appliance.formats.chunkio import decode_chunk, pread_fn, zeros
from appliance.formats.manifest import UNUSED, Disk, Manifest, Partition
from bootimage.client.api import Api
from bootimage.client.target import FileTarget

Log = Callable[[str], None]
Fetch = Callable[[str], bytes | bytearray | memoryview]


@dataclass(frozen=True)
class Plan:
    """What to leave alone on disk 0: byte ranges (start, end) and the edge chunks."""

    ranges: tuple[tuple[int, int], ...] = ()
    edges: tuple[int, ...] = ()

    def outside(self, offset: int, length: int) -> list[tuple[int, int]]:
        """The pieces of [offset, offset+length) outside every kept range."""
        pieces = [(offset, offset + length)]
        for lo, hi in self.ranges:
            cut = []
            for a, b in pieces:
                if b <= lo or a >= hi:
                    cut.append((a, b))
                    continue
                if a < lo:
                    cut.append((a, lo))
                if b > hi:
                    cut.append((hi, b))
            pieces = cut
        return pieces


def check(manifest: Manifest, target: FileTarget, numbers: Sequence[int], log: Log) -> Plan:
    """The plan for ``numbers`` (the job's kept partitions) on ``target`` (disk 0), or
    DiskRefused naming the mismatch — before anything is written."""
    if not numbers:
        return Plan()
    disk = manifest.disks[0]
    wanted = {p.number: p for p in disk.partitions}
    absent = [n for n in numbers if n not in wanted]
    if absent:
        raise DiskRefused(
            f"the job keeps partition {absent[0]}, but {manifest.ref} has no partition "
            f"{absent[0]} (it has {', '.join(str(n) for n in sorted(wanted)) or 'none'})",
            hint="fix the kept-partition rule (`slate keep list`, `slate keep rm`)",
        )
    sector = target.logical_sector_size or disk.logical_sector_size
    table = partitions.detect(pread_fn(target.fd), target.size, sector)
    if table.kind == "none":
        log(f"keep: {target.path} has no partition table (a new disk): nothing to keep, "
            f"partition(s) {', '.join(map(str, numbers))} restored from the image")  # fmt: skip
        return Plan()
    have = {p.number: p for p in table.partitions}
    for n in numbers:
        problem = _mismatch(wanted[n], have.get(n))
        if problem:
            raise DiskRefused(
                f"refusing to restore {manifest.ref} onto {target.path}: kept partition {n} "
                f"{problem}; nothing was written",
                hint="the disk's layout differs from the image's; if its data may go, remove "
                "the rule (`slate keep rm`), restore once, and add the rule again",
            )
    ranges = tuple(sorted((wanted[n].start, wanted[n].start + wanted[n].size) for n in numbers))
    plan = Plan(ranges)
    edges = [
        i
        for i in range(disk.chunk_count)
        if disk.chunks[i] != UNUSED and _edge(plan, *disk.chunk_range(i))
    ]
    for n in numbers:
        p = wanted[n]
        log(f"keep: partition {n} of {target.path} (start {p.start}, {p.size} bytes, "
            f"{partitions.type_name(p.type)}) matches {manifest.ref}: left as it is")  # fmt: skip
    return dataclasses.replace(plan, edges=tuple(edges))


def _mismatch(image: Partition, disk: Partition | None) -> str:
    if disk is None:
        return "is not in the disk's partition table"
    diffs = [
        f"{what} {have} on the disk, {want} in the image"
        for what, have, want in (
            ("start", disk.start, image.start),
            ("size", disk.size, image.size),
            ("type", disk.type.lower(), image.type.lower()),
        )
        if have != want
    ]
    return "differs: " + "; ".join(diffs) if diffs else ""


def _edge(plan: Plan, offset: int, length: int) -> bool:
    """A chunk partly inside and partly outside the kept ranges."""
    out = sum(b - a for a, b in plan.outside(offset, length))
    return 0 < out < length


def mask(manifest: Manifest, plan: Plan) -> Manifest:
    """The manifest as the write sees it: every chunk touching a kept range is ``unused``
    (the edge chunks are written by :func:`write_edges`)."""
    if not plan.ranges:
        return manifest
    disk = manifest.disks[0]
    chunks = tuple(
        UNUSED if plan.outside(*disk.chunk_range(i)) != [_span(disk, i)] else c
        for i, c in enumerate(disk.chunks)
    )
    masked = dataclasses.replace(disk, chunks=chunks)
    return dataclasses.replace(manifest, disks=(masked, *manifest.disks[1:]))


def _span(disk: Disk, i: int) -> tuple[int, int]:
    offset, length = disk.chunk_range(i)
    return offset, offset + length


def write_edges(
    api: Api, job_store: str, disk: Disk, target: FileTarget, plan: Plan, log: Log
) -> int:
    """Write the bytes outside the kept ranges of each edge chunk, verified first;
    returns the bytes verified."""
    verified = 0
    for i in plan.edges:
        offset, length = disk.chunk_range(i)
        chunk = disk.chunks[i]
        if chunk.digest is not None:
            data = decode_chunk(chunk.digest, api.fetch_chunk_view(chunk.digest, job_store), length)
        else:
            data = zeros(length)
        for a, b in plan.outside(offset, length):
            os.pwrite(target.fd, data[a - offset : b - offset], a)
            verified += b - a
    if plan.edges:
        target.fsync()
        log(f"keep: {len(plan.edges)} chunk(s) at the edge of a kept partition written "
            f"around it ({verified} bytes, verified)")  # fmt: skip
    return verified
