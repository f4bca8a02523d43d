"""Capture: a new version of the job's image from this machine's disk.

Only what a filesystem uses is read: for each partition whose filesystem partclone
knows, partclone's domain map lists the used blocks; a chunk holding none of them is
``unused``.  Everything else (partition tables, boot code in gaps, partitions of
unknown type) is read whole.  A read chunk of zeros is ``zero``; a data chunk is named
by its hash, and uploaded (compressed) only if the appliance lacks it.  The manifest is
committed last, with the source disk's facts; the appliance names the version.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from appliance.errors import DiskRefused
from appliance.formats import partitions
from appliance.formats.chunkio import (
    Extents,
    compress_chunk,
    hash_chunk,
    is_zero,
    ordered_map,
    pread_fn,
)
from appliance.formats.manifest import (
    DEFAULT_CHUNK_SIZE,
    UNUSED,
    ZERO,
    Chunk,
    Disk,
    Manifest,
    Partition,
)
from bootimage.client import checkup
from bootimage.client import disks as disks_mod
from bootimage.client.api import Api
from bootimage.client.identity import capture_checks
from bootimage.client.loopdev import attached, run
from bootimage.client.progress import Reporter
from bootimage.client.select import matches
from bootimage.client.target import FileTarget, busy_reason, open_target

EXTENDED = frozenset(f"0x{t:02x}" for t in partitions.EXTENDED)  # MBR extended types

# partclone tool per filesystem type (as blkid names it)
PARTCLONE = {
    "ext2": "extfs",
    "ext3": "extfs",
    "ext4": "extfs",
    "ntfs": "ntfs",
    "vfat": "fat",
    "xfs": "xfs",
    "btrfs": "btrfs",
    "exfat": "exfat",
}


def capture(
    api: Api,
    job: dict[str, Any],
    reporter: Reporter,
    *,
    disk_path: str | None = None,
    workers: int = 4,
) -> dict[str, Any]:
    """Capture the source disk; returns the appliance's answer ``{"image", "version"}``."""
    options = dict(job.get("options") or {})
    path = disk_path or pick_source(options.get("disk") or {}, reporter)
    checkup.check_disks(api, [path], reporter.log)  # a dying source disk is refused too
    with open_target(path, writable=False) as source:
        warnings = capture_checks(source.path, reporter.log)  # BitLocker: refused
        api.post_json("/state", {"state": "running"})
        disk = read_disk(source, api, reporter, workers)
    draft = Manifest(
        image="capture",  # placeholders: the appliance names the image and the version
        version="19700101T000000Z",
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        note=str(options.get("note") or ""),
        source=str((job.get("host") or {}).get("name") or ""),
        disks=(disk,),
        warnings=tuple(warnings),
    ).to_dict()
    draft.pop("image")
    draft.pop("version")
    reporter.set_phase("commit")
    answer = dict(api.post_json("/capture/commit", draft))
    answer["hashed_bytes"] = disk.size - disk.bytes_of("unused")
    reporter.log(f"committed {answer.get('image')}@{answer.get('version')}")
    return answer


def read_disk(source: FileTarget, api: Api, reporter: Reporter, workers: int) -> Disk:
    size = source.size
    sector = source.logical_sector_size or 512
    table, found = partition_table(source, sector)
    parts = tuple(_with_fs(source.path, p) for p in found)
    used = used_extents(source.path, size, parts, reporter)
    reporter.log(
        f"{source.path}: {size / 2**20:,.0f} MiB, table {table}, "
        f"{len(parts)} partition(s); {used.total / 2**20:,.0f} MiB to read"
    )
    reporter.start_phase("capture", size)
    chunks = encode(source, size, used, api, reporter, workers)
    facts = identity(source.path)
    return Disk(
        index=0,
        size=size,
        logical_sector_size=sector,
        physical_sector_size=source.physical_sector_size or sector,
        table=table,
        partitions=parts,
        model=(facts.model or "") if facts else "",
        serial=(facts.serial or "") if facts else "",
        chunk_size=DEFAULT_CHUNK_SIZE,
        chunks=chunks,
    )


def identity(path: str) -> disks_mod.DiskInfo | None:
    """udev's record of the source disk (model, serial) — None for a file, or no udev."""
    try:
        real = os.path.realpath(path)
        return next((d for d in disks_mod.discover() if d.path == real), None)
    except Exception:  # informational only: never fail a capture over it
        return None


def encode(
    source: FileTarget, size: int, used: Extents, api: Api, reporter: Reporter, workers: int
) -> tuple[Chunk, ...]:
    read = pread_fn(source.fd)
    known: set[str] = set()
    lock = threading.Lock()
    uploaded = [0, 0]  # chunks, compressed bytes

    def one(index: int) -> Chunk:
        offset = index * DEFAULT_CHUNK_SIZE
        length = min(DEFAULT_CHUNK_SIZE, size - offset)
        try:
            if not used.overlaps(offset, length):
                return UNUSED
            data = read(offset, length)
            if is_zero(data):
                return ZERO
            digest = hash_chunk(data)
            with lock:
                seen = digest in known
                known.add(digest)
            if not seen and api.post_json("/capture/missing", {"hashes": [digest]})["missing"]:
                frame = compress_chunk(data)
                api.put_chunk(digest, frame)
                with lock:
                    uploaded[0] += 1
                    uploaded[1] += len(frame)
            return Chunk("hash", digest)
        finally:
            reporter.add(length)

    chunks = tuple(ordered_map(one, range(-(-size // DEFAULT_CHUNK_SIZE)), workers))
    reporter.log(f"uploaded {uploaded[0]} new chunk(s), {uploaded[1] / 2**20:,.1f} MiB compressed")
    return chunks


def partition_table(source: FileTarget, sector: int) -> tuple[str, list[Partition]]:
    """(table type, partitions with byte offsets), by the one reader ``slate image
    import`` uses too.  A disk whose first sectors cannot be read is an error (the
    capture fails), never "no partition table" (which would read it whole)."""
    table = partitions.detect(pread_fn(source.fd), source.size, sector)
    return table.kind, list(table.partitions)


def _with_fs(path: str, part: Partition) -> Partition:
    out = run(
        ["blkid", "-p", "-o", "export", "-O", str(part.start), "-S", str(part.size), path],
        "probe a filesystem",
        ok=(0, 2),
    )
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return Partition(
        part.number, part.start, part.size, part.type, part.name, fields.get("TYPE", ""), part.uuid
    )


def used_extents(path: str, size: int, parts: tuple[Partition, ...], reporter: Reporter) -> Extents:
    """Byte ranges that must be read: all but the free space of known filesystems."""
    ranges: list[tuple[int, int]] = []
    cursor = 0
    for part in sorted(parts, key=lambda p: p.start):
        if part.type in EXTENDED:
            continue  # a container: its EBRs lie in the gaps between its logical partitions
        ranges.append((cursor, max(part.start - cursor, 0)))
        cursor = max(cursor, part.start + part.size)
        tool = PARTCLONE.get(part.fs)
        mapped = tool and _partclone_map(path, part, tool, reporter)
        ranges += mapped if mapped else [(part.start, part.size)]
    ranges.append((cursor, size - cursor))
    return Extents(ranges)


def _partclone_map(
    path: str, part: Partition, tool: str, reporter: Reporter
) -> list[tuple[int, int]] | None:
    with (
        tempfile.TemporaryDirectory(prefix="slate-dom-") as tmp,
        attached(path, part.start, part.size, read_only=True) as dev,
    ):
        domain = Path(tmp) / "domain"
        try:
            run(
                [
                    f"partclone.{tool}",
                    "-D",
                    "-q",
                    # partclone's progress thread sleeps this many seconds between
                    # updates and is joined at the end: the default 2 s was most of a
                    # small capture's time.  The map itself only reads the fs bitmaps.
                    "-f",
                    "0",
                    "-s",
                    dev,
                    "-O",
                    str(domain),
                    f"--offset_domain={part.start}",
                ],
                f"map used blocks of partition {part.number}",
            )
            used = parse_domain(domain.read_text())
        except Exception as exc:
            reporter.log(f"partition {part.number} ({part.fs}): {exc}; reading it whole")
            return None
    reporter.log(
        f"partition {part.number} ({part.fs}): {sum(n for _o, n in used) / 2**20:,.1f} "
        f"of {part.size / 2**20:,.0f} MiB in use"
    )
    return used or [(part.start, 0)]


def parse_domain(text: str) -> list[tuple[int, int]]:
    """Used ('+') ranges of a ddrescue domain map written by ``partclone -D``."""
    used = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#") and fields[2] == "+":
            used.append((int(fields[0], 16), int(fields[1], 16)))
    return used


def pick_source(hints: dict[str, Any], reporter: Reporter) -> str:
    found = disks_mod.discover()
    reporter.log("disks: " + (", ".join(d.describe() for d in found) or "none"))
    named = (
        [d for d in found if matches(d, hints)] if hints else [d for d in found if not d.removable]
    )
    named = [d for d in named if not busy_reason(d.path)]
    if len(named) != 1:
        raise DiskRefused(
            f"cannot tell which disk to capture: {len(named)} candidates "
            f"({', '.join(d.describe() for d in named) or 'none'})",
            hint="name the source disk by serial or WWN in the job's disk hints",
        )
    return named[0].path
