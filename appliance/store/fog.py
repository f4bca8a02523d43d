"""FOG's image directory (``/images/NAME``) as import sources, one per disk.

What each file holds is what FOS's own scripts write (fogproject/fos,
``usr/share/fog/lib/funcs.sh``):

* ``dN.partitions`` — ``sfdisk -d`` of disk N (``savePartitionTablesAndBootLoaders``);
  ``dN.original.partitions`` in older images; ``dN.minimum.partitions`` the sizes a
  resizable image may shrink to (not needed to import it as it was).
* ``dN.mbr`` — MBR disks: ``dd count=N`` of the first sectors up to the first partition
  (at most 2048; ``saveGRUB``); GPT disks: ``sgdisk -b`` (a backup of the GPT).
  ``dN.grub.mbr`` beside a GPT backup: the first sectors, when they held GRUB.
* ``dNpM.img`` — partition M as ``partclone.<fs> -c`` through ``pigz`` or ``zstdmt``
  (``savePartition``, ``uploadFormat``), or ``dNpM.img.000 .001 …`` when split.
* ``dN.original.swapuuids`` — ``<number> <uuid>`` of each swap partition (no image;
  ``saveSwapUUID`` in ``partition-funcs.sh``): recreated by ``mkswap -U`` as
  ``makeSwapSystem`` does.

The disk is rebuilt the way FOS's ``restorePartitionTablesAndBootLoaders`` does it, with
the same tools on a sparse file: MBR — the saved sectors, then ``sfdisk`` from the dump;
GPT — the GRUB sectors, then ``sgdisk -z`` and ``sgdisk -gl dN.mbr``.  The table that
results must list exactly the dump's partitions, and each partition's image must be of
that partition (else: "does not match").
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import IntegrityError, SlateError, UsageError
from appliance.formats import partitions
from appliance.formats.chunkio import pread_fn
from appliance.store.foreign import (
    Disk,
    Scratch,
    scratch_file,
    split_parts,
    unpack_partclone,
    write_swap,
)

_PART_LINE = re.compile(r"^\S+?(?P<num>\d+)\s*:\s*(?P<fields>.*)$")
_IMG = re.compile(r"^d(?P<disk>\d+)p(?P<part>\d+)\.img(?:\.(?P<split>\d{3}))?$")


@dataclass(frozen=True)
class Dump:
    """An ``sfdisk -d`` dump: the label, sector size, last LBA and (number, start, size)
    of each partition, in sectors."""

    label: str  # "gpt" | "dos"
    sector_size: int
    last_lba: int
    parts: tuple[tuple[int, int, int], ...]

    @property
    def disk_sectors(self) -> int:
        if self.label == "gpt" and self.last_lba:
            return self.last_lba + 34  # the backup GPT: 32 sectors of entries + header
        return max((start + size for _, start, size in self.parts), default=1)


def parse_dump(path: Path) -> Dump:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"cannot read {path}: {exc}") from exc
    head: dict[str, str] = {}
    parts = []
    for line in text.splitlines():
        m = _PART_LINE.match(line)
        if m and "start=" in m["fields"]:
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (f.partition("=") for f in m["fields"].split(","))
            )
            try:
                parts.append((int(m["num"]), int(fields["start"]), int(fields.get("size", "0"))))
            except (KeyError, ValueError):
                raise IntegrityError(f"{path} is damaged: cannot read the line {line!r}") from None
        elif ":" in line:
            key, _, value = line.partition(":")
            head[key.strip()] = value.strip()
    if head.get("label") not in ("gpt", "dos") or not parts:
        raise IntegrityError(
            f"{path} is not an sfdisk dump of a partitioned disk (no label or no partitions)",
            hint="FOG writes it with `sfdisk -d`; copy the image directory again",
        )
    return Dump(
        label=head["label"],
        sector_size=int(head.get("sector-size", "512")),
        last_lba=int(head.get("last-lba", "0")),
        parts=tuple(p for p in parts if p[2] > 0),
    )


def run_tool(cmd: list[str], what: Path, stdin: Path | None = None) -> None:
    try:
        with open(stdin, "rb") if stdin else contextlib.nullcontext() as fh:
            proc = subprocess.run(cmd, stdin=fh, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        hint = "install fdisk and gdisk (apt-get install fdisk gdisk)"
        raise SlateError(f"cannot import {what}: {cmd[0]} is not installed", hint=hint) from None
    if proc.returncode:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise IntegrityError(
            f"{what} is damaged: {cmd[0]} refused it ({detail[-1] if detail else 'no detail'})",
            hint="copy the image directory again from the FOG server",
        )


def _swap_uuids(path: Path) -> dict[int, str]:
    """``dN.original.swapuuids``: ``<partition number> <uuid>`` per line
    (``saveSwapUUID``; older FOS wrote the device, e.g. ``/dev/sda5``)."""
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*\S*?(\d+)\s+([0-9A-Fa-f-]{8,})\s*$", line)
        if m:
            found[int(m[1])] = m[2]
    return found


def _copy_sectors(src: Path, out: Scratch, limit: int) -> None:
    data = src.read_bytes()[:limit]
    out.write(0, data)
    out.used.append((0, len(data)))


@contextlib.contextmanager
def fog_disks(root: Path, scratch: Path, tag: str) -> Iterator[list[Disk]]:
    names = {p.name for p in root.iterdir()}
    numbers = sorted({int(m[1]) for n in names if (m := re.match(r"^d(\d+)[.p]", n))})
    if not numbers:
        raise UsageError(f"{root} holds no FOG disk (no d1.partitions, d1.mbr, d1p1.img)")
    with contextlib.ExitStack() as stack:
        disks = [stack.enter_context(_fog_disk(root, n, names, scratch, tag)) for n in numbers]
        yield disks


@contextlib.contextmanager
def _fog_disk(root: Path, n: int, names: set[str], scratch: Path, tag: str) -> Iterator[Disk]:
    dump_path = next(
        (root / f for f in (f"d{n}.partitions", f"d{n}.original.partitions") if f in names), None
    )
    if dump_path is None:
        raise IntegrityError(
            f"{root / f'd{n}.partitions'} is missing: disk {n} of the FOG image has no"
            " partition table dump",
            hint="single-partition and raw FOG images are files: import the image file itself",
        )
    dump = parse_dump(dump_path)
    ss = dump.sector_size
    images: dict[int, Path] = {}
    for name in sorted(names):
        m = _IMG.match(name)
        if m and int(m["disk"]) == n and m["split"] in (None, "000"):
            images[int(m["part"])] = root / name
    numbers = {num for num, _, _ in dump.parts}
    stray = sorted(set(images) - numbers)
    if stray:
        raise IntegrityError(
            f"{images[stray[0]]} does not match the partition table {dump_path}: it has no"
            f" partition {stray[0]}",
            hint="the image's files are from different captures; copy the image again",
        )
    size = dump.disk_sectors * ss
    with scratch_file(scratch, tag, "fog", size) as out:
        mbr = root / f"d{n}.mbr"
        if dump.label == "dos":
            if mbr.exists():
                _copy_sectors(mbr, out, 2048 * ss)
            run_tool(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(out.path)], dump_path,
                 stdin=dump_path)  # fmt: skip
        else:
            grub = root / f"d{n}.grub.mbr"
            if grub.exists():
                _copy_sectors(grub, out, 2048 * ss)
            if not mbr.exists():
                raise IntegrityError(f"{mbr} is missing: the GPT backup of disk {n}")
            run_tool(["sgdisk", "-z", str(out.path)], mbr)
            run_tool(["sgdisk", "-gl", str(mbr), str(out.path)], mbr)
        out.mark_written()  # the tables (and the EBRs of logical partitions)
        check_table(out, size, ss, dump, dump_path)
        kinds = set()
        swaps = _swap_uuids(root / f"d{n}.original.swapuuids")
        for num, start, count in dump.parts:
            if num in images:
                hdr = unpack_partclone(split_parts(images[num]), out, start * ss, count * ss)
                kinds.add(hdr.fs)
            elif num in swaps:
                write_swap(out, start * ss, count * ss, root / f"d{n}.original.swapuuids",
                           swaps[num])  # fmt: skip
                kinds.add("swap")
        what = (
            f"FOG image disk {n}: {dump.label.replace('dos', 'mbr').upper()},"
            f" {len(dump.parts)} partitions, {len(images)} partclone images"
            f" ({', '.join(sorted(kinds)) or 'none'})"
        )
        yield Disk(size, out, what)


def check_table(out: Scratch, size: int, ss: int, dump: Dump, dump_path: Path) -> None:
    table = partitions.detect(pread_fn(out.fd), size, ss)
    got = sorted((p.number, p.start // ss, p.size // ss) for p in table.partitions)
    want = sorted(dump.parts)
    if got != want:
        raise IntegrityError(
            f"{dump_path} does not match the partition table rebuilt from it and"
            f" {dump_path.parent / dump_path.name.split('.')[0]}.mbr: {want} != {got}",
            hint="the image's files are from different captures; copy the image again",
        )
