"""A Clonezilla ``savedisk`` image directory as import sources, one per disk.

What each file holds is what Clonezilla's ``ocs-functions`` writes (stevenshiau/
clonezilla, ``scripts/sbin/ocs-functions``):

* ``disk`` — the saved disks' names (``sda`` …); ``parts`` — their partitions.
* ``sda-pt.sf`` — ``sfdisk -d`` (both MBR and GPT); ``sda-pt.parted`` — ``parted -s
  … unit s print`` (its ``Disk /dev/sda: Ns`` line is the disk's size).
* GPT: ``sda-gpt-1st`` (``dd count=34``), ``sda-gpt-2nd`` (``dd skip=N-33+1 count=33``).
  MBR: ``sda-mbr`` (``dd count=1``), ``sda-hidden-data-after-mbr`` (sector 1 up to the
  first partition).
* ``sda1.ext4-ptcl-img.zst`` — ``partclone.ext4 -c`` through gzip/zstd/xz/lz4 (or
  ``uncomp``), split as ``….aa .ab …`` when a volume limit was set;
  ``sda2.dd-img.*`` — ``partclone.dd`` (raw bytes) of a filesystem partclone does not
  know; ``swappt-sda5.info`` — ``UUID="…"`` / ``LABEL="…"`` of a swap partition.
* ``MD5SUMS``, ``SHA1SUMS``, ``SHA256SUMS``, ``SHA512SUMS``, ``B2SUMS`` when the image
  was saved with checksums: every file they name is checked.

The disk is rebuilt as Clonezilla restores it (GPT: the two GPT copies by ``dd``; MBR:
``sfdisk < sda-pt.sf``, then the MBR and the hidden data) in a sparse scratch file; the
table must list the dump's partitions and each image must fit its partition.
A ``saveparts`` image (no ``disk`` file) and encrypted images are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from appliance.errors import IntegrityError, UsageError
from appliance.store.fog import Dump, check_table, parse_dump, run_tool
from appliance.store.foreign import (
    Disk,
    Scratch,
    open_stream,
    scratch_file,
    split_parts,
    unpack_partclone,
    write_swap,
)

SUMS = {"MD5SUMS": "md5", "SHA1SUMS": "sha1", "SHA256SUMS": "sha256",
        "SHA512SUMS": "sha512", "B2SUMS": "blake2b"}  # fmt: skip
_PARTED_SIZE = re.compile(r"^Disk /dev/\S+:\s*(\d+)s\s*$", re.M)
_PIECE = 4 << 20
# after "-ptcl-img" / ".dd-img": the compression (Clonezilla's names), then a split part
_IMG_TAIL = re.compile(
    r"^(?:\.(?:gz|bz2|lzo|lzma|xz|lzip|lrz|lz4|zst|uncomp))?(?:\.(?P<split>[a-z]{2,3}))?$"
)


@contextlib.contextmanager
def clonezilla_disks(root: Path, scratch: Path, tag: str) -> Iterator[list[Disk]]:
    names = {p.name for p in root.iterdir()}
    if "disk" not in names:
        raise UsageError(
            f"{root} is a Clonezilla saveparts image (partitions, no disk): importing it is"
            " not implemented yet",
            hint=f"import each partition's partclone file, e.g. {root}/sda1.ext4-ptcl-img.zst",
        )
    _check_sums(root, names)
    disks = (root / "disk").read_text().split()
    parts = (root / "parts").read_text().split() if "parts" in names else []
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(_disk(root, d, parts, names, scratch, tag)) for d in disks]


def _check_sums(root: Path, names: set[str]) -> None:
    for sums, algo in SUMS.items():
        if sums not in names:
            continue
        for line in (root / sums).read_text().splitlines():
            want, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*").removeprefix("./")
            if not name:
                continue
            path = root / name
            if not path.exists():
                raise IntegrityError(f"{path} is missing (listed in {root / sums})",
                                     hint="copy the whole image directory again")  # fmt: skip
            h = hashlib.new(algo)
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
            if h.hexdigest() != want.lower():
                raise IntegrityError(
                    f"{path} is damaged: its {algo} is not the one {root / sums} records",
                    hint="copy the image again from where Clonezilla saved it",
                )


def _disk_sectors(root: Path, d: str, dump: Dump) -> int:
    parted = root / f"{d}-pt.parted"
    if parted.exists():
        m = _PARTED_SIZE.search(parted.read_text(errors="replace"))
        if m:
            return int(m[1])
    return dump.disk_sectors


def _part_number(disk: str, part: str) -> int | None:
    if not part.startswith(disk):
        return None
    rest = part[len(disk) :].removeprefix("p")
    return int(rest) if rest.isdigit() else None


def _first_part(root: Path, names: set[str], part: str, kind: str) -> Path | None:
    """The (first part of the) image file of ``part``: ``sda1.ext4-ptcl-img.zst`` or
    ``sda1.ext4-ptcl-img.zst.aa``; ``kind`` is "-ptcl-img" or ".dd-img"."""
    found = sorted(n for n in names if n.startswith(f"{part}.") and kind in n)
    for n in found:
        m = _IMG_TAIL.match(n.split(kind, 1)[1])
        if m and m["split"] in (None, "aa", "aaa"):
            return root / n
    return None


@contextlib.contextmanager
def _disk(
    root: Path, d: str, parts: list[str], names: set[str], scratch: Path, tag: str
) -> Iterator[Disk]:
    sf = root / f"{d}-pt.sf"
    if not sf.exists():
        raise IntegrityError(f"{sf} is missing: disk {d} of the Clonezilla image has no"
                             " partition table", hint="copy the whole image directory")  # fmt: skip
    dump = parse_dump(sf)
    ss = dump.sector_size
    sectors = _disk_sectors(root, d, dump)
    size = sectors * ss
    with scratch_file(scratch, tag, "clonezilla", size) as out:
        first, second = root / f"{d}-gpt-1st", root / f"{d}-gpt-2nd"
        if dump.label == "gpt" and first.exists() and second.exists():
            _place(out, 0, first.read_bytes()[: 34 * ss])
            at = (sectors - 33 + 1) * ss  # where ocs-functions saved it from
            _place(out, at, second.read_bytes()[: size - at])
        else:
            sfdisk = ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(out.path)]
            run_tool(sfdisk, sf, stdin=sf)
            out.mark_written()  # the tables (and the EBRs of logical partitions)
            mbr, hidden = root / f"{d}-mbr", root / f"{d}-hidden-data-after-mbr"
            if mbr.exists():
                _place(out, 0, mbr.read_bytes()[:ss])
            if hidden.exists():
                first_start = min(start for _, start, _ in dump.parts)
                _place(out, ss, hidden.read_bytes()[: max(first_start - 1, 0) * ss])
        check_table(out, size, ss, dump, sf)
        kinds = []
        by_number = {n: (start * ss, count * ss) for n, start, count in dump.parts}
        for part in parts:
            num = _part_number(d, part)
            if num is None:
                continue
            if num not in by_number:
                raise IntegrityError(
                    f"{root / 'parts'} names {part}, which {sf} does not have: the partition"
                    " table does not match the partitions",
                    hint="the image's files are from different saves; copy the image again",
                )
            base, limit = by_number[num]
            ptcl = _first_part(root, names, part, "-ptcl-img")
            raw = _first_part(root, names, part, ".dd-img")
            if ptcl:
                kinds.append(unpack_partclone(split_parts(ptcl), out, base, limit).fs)
            elif raw:
                _unpack_raw(split_parts(raw), out, base, limit)
                kinds.append("dd")
            elif f"swappt-{part}.info" in names:
                _swap(root / f"swappt-{part}.info", out, base, limit)
                kinds.append("swap")
        what = (
            f"Clonezilla image disk {d}: {dump.label.replace('dos', 'mbr').upper()},"
            f" {len(dump.parts)} partitions ({', '.join(kinds) or 'none saved'})"
        )
        yield Disk(size, out, what)


def _place(out: Scratch, offset: int, data: bytes) -> None:
    out.write(offset, data)
    out.used.append((offset, len(data)))


def _unpack_raw(parts: list[Path], out: Scratch, base: int, limit: int) -> None:
    """A ``partclone.dd`` image: the partition's bytes, compressed or not."""
    name = str(parts[0])
    done = 0
    with open_stream(parts) as (stream, _comp):
        while True:
            try:
                piece = stream.read(_PIECE)
            except Exception as exc:  # gzip/xz/zstd: truncated or damaged
                raise IntegrityError(f"{name} is truncated or damaged: {exc}") from exc
            if not piece:
                break
            if done + len(piece) > limit:
                raise IntegrityError(
                    f"{name} does not match the partition table: it holds more than the"
                    f" partition's {limit} bytes",
                    hint="the image's files are from different saves; copy the image again",
                )
            if piece.count(0) != len(piece):
                _place(out, base + done, piece)
            done += len(piece)
    if done != limit:
        raise IntegrityError(
            f"{name} is truncated: {done} of the partition's {limit} bytes",
            hint="copy the image again; a split image needs all of its parts",
        )


def _swap(info: Path, out: Scratch, base: int, limit: int) -> None:
    """``swappt-sda5.info``: ``UUID="…"`` and ``LABEL="…"`` (as Clonezilla's restore
    sources it before ``mkswap``)."""
    fields = dict(re.findall(r'^(UUID|LABEL)="([^"]*)"', info.read_text(), re.M))
    write_swap(out, base, limit, info, fields.get("UUID", ""), fields.get("LABEL", ""))
