"""After the chunks are written: GPT backup header to the end of a larger disk, the
kernel told about the new partition table, and — when the job asks — the last
partition and its filesystem grown to fill the disk.  On a UEFI machine that is about
to reboot, the next boot (once) goes straight to the restored disk."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from appliance.errors import SlateError
from appliance.formats.manifest import Disk
from bootimage.client.loopdev import attached, load_module, run
from bootimage.client.target import BlockTarget, FileTarget

GROWABLE = ("ext2", "ext3", "ext4", "ntfs")
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
FALLBACK_LOADER = "\\EFI\\BOOT\\BOOTX64.EFI"  # the removable-media path every OS installs
BOOT_LABEL = "Slate restored disk"
EFI_DIR = Path("/sys/firmware/efi")


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


def boot_restored_next(target: FileTarget, disk: Disk, log: Callable[[str], None]) -> bool:
    """UEFI: point ``BootNext`` (used once, then the firmware's own order again) at the
    restored disk's fallback loader, so the reboot after a restore does not walk every
    network boot option (PXEv4, PXEv6, HTTP boot ...) before it reaches the disk.  Any
    failure only means the firmware's boot order applies, as without this step."""
    if not isinstance(target, BlockTarget) or not EFI_DIR.is_dir() or disk.table != "gpt":
        return False
    esp = next((p for p in disk.partitions if p.type.lower() == ESP_TYPE), None)
    if esp is None:
        return False
    try:
        _mount_efivars()
        for number in _entries(run(["efibootmgr"], "list UEFI boot entries"), BOOT_LABEL):
            run(["efibootmgr", "-q", "-b", number, "-B"], f"remove the old Boot{number}")
        out = run(
            ["efibootmgr", "--create-only", "--disk", target.path, "--part", str(esp.number),
             "--label", BOOT_LABEL, "--loader", FALLBACK_LOADER],
            "add a boot entry for the restored disk",
        )  # fmt: skip
        number = _entries(out, BOOT_LABEL)[0]
        run(["efibootmgr", "-q", "--bootnext", number], "set BootNext")
    except (SlateError, IndexError) as exc:
        why = exc.message if isinstance(exc, SlateError) else "the new entry is not listed"
        log(f"UEFI: the next boot follows the firmware's order ({why})")
        return False
    log(f"UEFI: the next boot starts the restored disk once (Boot{number}: {FALLBACK_LOADER})")
    return True


def _entries(listing: str, label: str) -> list[str]:
    """Boot entry numbers whose label is ``label`` in ``efibootmgr`` output."""
    found = []
    for line in listing.splitlines():
        m = re.match(r"Boot([0-9A-Fa-f]{4})\*?\s+(.*)$", line)
        if m and m.group(2).split("\t")[0].strip() == label:
            found.append(m.group(1))
    return found


def _mount_efivars() -> None:
    efivars = EFI_DIR / "efivars"
    if os.path.ismount(efivars):
        return
    load_module("efivarfs")
    run(["mount", "-t", "efivarfs", "efivarfs", str(efivars)], "mount efivarfs")
