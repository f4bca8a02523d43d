"""After the chunks are written: GPT backup header to the end of a larger disk, the
kernel told about the new partition table, and — when the job asks — the last
partition and its filesystem grown to fill the disk."""

from __future__ import annotations

import json
from collections.abc import Callable

from appliance.errors import SlateError
from appliance.imagefmt.manifest import Disk
from bootimage.client.loopdev import attached, run
from bootimage.client.target import BlockTarget, FileTarget

GROWABLE = ("ext2", "ext3", "ext4", "ntfs")


def after_write(target: FileTarget, disk: Disk, *, grow: bool, log: Callable[[str], None]) -> None:
    size = target.size
    if disk.table == "gpt" and size > disk.size:
        # The backup GPT header must sit in the disk's last sector, not the image's.
        run(["sgdisk", "-e", target.path], "move the GPT backup header to the end", ok=(0, 2))
        log(f"{target.path}: GPT backup header moved to the end ({size - disk.size} bytes more)")
    if grow and size > disk.size:
        grow_last(target, disk, log)
    if isinstance(target, BlockTarget):
        try:
            target.reread_partitions()
        except OSError as exc:
            log(f"{target.path}: the kernel did not re-read the partition table ({exc.strerror})")


def grow_last(target: FileTarget, disk: Disk, log: Callable[[str], None]) -> None:
    if disk.table not in ("gpt", "mbr"):
        log("grow: the image has no partition table; nothing to grow")
        return
    parts = partitions(target.path)
    if not parts:
        log("grow: no partitions found; nothing to grow")
        return
    last = max(parts, key=lambda p: int(str(p["start"])))
    number = _number(last, 0)
    run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-N", str(number), target.path],
        f"grow partition {number}",
        stdin=", +\n",
    )
    sector = target.logical_sector_size or 512
    grown = next(p for p in partitions(target.path) if _number(p, 0) == number)
    fs = _fs_of(disk, number)
    if fs not in GROWABLE:
        log(f"grow: partition {number} grown; its filesystem ({fs or 'unknown'}) is left as is")
        return
    start, length = int(str(grown["start"])) * sector, int(str(grown["size"])) * sector
    with attached(target.path, start, length, read_only=False) as dev:
        if fs.startswith("ext"):
            run(["e2fsck", "-f", "-y", dev], f"check {fs} before growing", ok=(0, 1))
            run(["resize2fs", dev], f"grow the {fs} filesystem")
        else:
            run(["ntfsresize", "--force", "--force", dev], "grow the NTFS filesystem", stdin="y\n")
    log(f"grow: partition {number} and its {fs} filesystem now end at the end of the disk")


def partitions(path: str) -> list[dict[str, object]]:
    out = run(["sfdisk", "--json", path], f"read the partition table of {path}")
    return list(json.loads(out).get("partitiontable", {}).get("partitions", []))


def _number(part: dict[str, object], default: int) -> int:
    node = str(part.get("node", ""))
    digits = ""
    for ch in reversed(node):
        if not ch.isdigit():
            break
        digits = ch + digits
    return int(digits) if digits else default


def _fs_of(disk: Disk, number: int) -> str:
    for p in disk.partitions:
        if p.number == number:
            return p.fs
    raise SlateError(f"partition {number} is not in the image's manifest")
