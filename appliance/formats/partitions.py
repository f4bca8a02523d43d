"""Partition tables (GPT, MBR) and filesystem magic, parsed from a disk's first
sectors in pure Python.  ``read(offset, length)`` is any reader of the disk, so this
works on a source file, a block device or a restored target alike.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import IntegrityError
from appliance.formats.manifest import Partition

ReadFn = Callable[[int, int], bytes]

GPT_TYPES = {
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI system",
    "21686148-6449-6e6f-744e-656564454649": "BIOS boot",
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "Linux root (x86-64)",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
    "e3c9e316-0b5c-4db8-817d-f92df00215ae": "Microsoft reserved",
    "de94bba4-06d1-4d40-a16a-bfd50179d6ac": "Windows recovery",
}
MBR_TYPES = {
    0x07: "NTFS/exFAT",
    0x0B: "FAT32",
    0x0C: "FAT32 (LBA)",
    0x0E: "FAT16 (LBA)",
    0x82: "Linux swap",
    0x83: "Linux",
    0x8E: "Linux LVM",
    0xEF: "EFI system",
}


@dataclass(frozen=True)
class Table:
    kind: str  # "gpt" | "mbr" | "none"
    partitions: tuple[Partition, ...] = ()


EXTENDED = frozenset({0x05, 0x0F, 0x85})
MAX_LOGICAL = 128  # an EBR chain longer than this (or a loop) is not followed further


def detect(read: ReadFn, size: int, sector_size: int = 512) -> Table:
    """The partition table of a disk of ``size`` bytes.  Odd content is "no table"
    (``Table("none")``); a disk that cannot be *read* is an error (IntegrityError):
    reading it whole as if it had no table would hide that.  The one reader of
    partition tables for import and capture."""
    try:
        mbr = read(0, 512)
        if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
            return Table("none")
        entries = [struct.unpack_from("<B3sB3sII", mbr, 446 + 16 * i) for i in range(4)]
        if any(e[2] == 0xEE for e in entries):
            for ss in dict.fromkeys((sector_size, 512, 4096)):
                gpt = _gpt(read, size, ss)
                if gpt is not None:
                    return gpt
        return _mbr(read, entries, sector_size)
    except OSError as exc:
        raise IntegrityError(
            f"cannot read the partition table: {exc}",
            hint="check the disk (dmesg, smartctl); a disk that cannot be read is not imaged",
        ) from exc
    except (struct.error, ValueError, OverflowError):
        return Table("none")


def _mbr(read: ReadFn, entries: list[tuple[int, ...]], ss: int) -> Table:
    parts = []
    for n, (_status, _chs1, ptype, _chs2, lba, count) in enumerate(entries, start=1):
        if ptype == 0 or count == 0:
            continue
        start, length = lba * ss, count * ss
        parts.append(Partition(n, start, length, f"0x{ptype:02x}", fs=fs_type(read, start)))
        if ptype in EXTENDED:
            parts.extend(_logical(read, lba, ss))
    return Table("mbr", tuple(parts))


def _logical(read: ReadFn, ext_lba: int, ss: int) -> list[Partition]:
    """Logical partitions (5, 6, …) of the EBR chain of the extended partition at
    ``ext_lba``: each EBR's first entry is relative to itself, its second (the next
    EBR) to the start of the extended partition."""
    parts: list[Partition] = []
    ebr_lba, seen = ext_lba, set()
    while ebr_lba not in seen and len(parts) < MAX_LOGICAL:
        seen.add(ebr_lba)
        ebr = read(ebr_lba * ss, 512)
        if len(ebr) < 512 or ebr[510:512] != b"\x55\xaa":
            break
        first = struct.unpack_from("<B3sB3sII", ebr, 446)
        nxt = struct.unpack_from("<B3sB3sII", ebr, 462)
        if first[2] != 0 and first[5] != 0:
            start = (ebr_lba + first[4]) * ss
            number = 5 + len(parts)
            parts.append(
                Partition(
                    number, start, first[5] * ss, f"0x{first[2]:02x}", fs=fs_type(read, start)
                )
            )
        if nxt[2] not in EXTENDED or nxt[4] == 0:
            break
        ebr_lba = ext_lba + nxt[4]
    return parts


def _gpt(read: ReadFn, size: int, ss: int) -> Table | None:
    """The GPT of the disk: the primary header and entries when both CRCs hold, else
    the backup at the disk's last sector (as firmware does), else None."""
    found = _gpt_at(read, size, ss, 1)
    if found is None and size >= 3 * ss:
        found = _gpt_at(read, size, ss, size // ss - 1)
    return found


def _gpt_at(read: ReadFn, size: int, ss: int, lba: int) -> Table | None:
    header = read(lba * ss, 92)
    if len(header) < 92 or header[:8] != b"EFI PART":
        return None
    (hsize,) = struct.unpack_from("<I", header, 12)
    if not 92 <= hsize <= ss:
        return None
    hdr = read(lba * ss, hsize)
    crc = zlib.crc32(hdr[:16] + b"\0\0\0\0" + hdr[20:hsize])
    if crc != struct.unpack_from("<I", hdr, 16)[0]:
        return None
    entries_lba, count, esize, entries_crc = struct.unpack_from("<QIII", hdr, 72)
    if not 128 <= esize <= 4096 or count > 1024 or (entries_lba + 1) * ss > size:
        return None
    table = read(entries_lba * ss, count * esize)
    if len(table) < count * esize or zlib.crc32(table) != entries_crc:
        return None  # damaged entries: the other copy, or no table
    parts = []
    for n in range(count):
        e = table[n * esize : (n + 1) * esize]
        if e[:16] == b"\0" * 16:
            continue
        first, last = struct.unpack_from("<QQ", e, 32)
        if not 0 < first <= last or (last + 1) * ss > size:
            continue  # outside the disk: not a partition this disk can hold
        ptype = str(uuid.UUID(bytes_le=e[:16]))
        name = e[56:128].decode("utf-16-le", "replace").rstrip("\0")
        start = first * ss
        parts.append(
            Partition(
                number=n + 1,
                start=start,
                size=(last - first + 1) * ss,
                type=ptype,
                name=name,
                fs=fs_type(read, start),
                uuid=str(uuid.UUID(bytes_le=e[16:32])),
            )
        )
    return Table("gpt", tuple(parts))


def fs_type(read: ReadFn, start: int) -> str:
    """Filesystem type at ``start`` by its magic bytes ("" when unknown)."""
    head = read(start, 4096)
    if len(head) < 4096:
        return ""
    if head[3:11] == b"NTFS    ":
        return "ntfs"
    if head[3:11] == b"EXFAT   ":
        return "exfat"
    if head[82:87] == b"FAT32":
        return "vfat"
    if head[54:59] in (b"FAT12", b"FAT16"):
        return "vfat"
    if head[:4] == b"XFSB":
        return "xfs"
    if head[:6] == b"LUKS\xba\xbe":
        return "crypto_LUKS"
    if head[4086:4096] in (b"SWAPSPACE2", b"SWAP-SPACE"):
        return "swap"
    if head[1080:1082] == b"\x53\xef":
        return _ext_version(head[1024:2048])
    btrfs = read(start + 0x10040, 8)
    if btrfs == b"_BHRfS_M":
        return "btrfs"
    return ""


def _ext_version(sb: bytes) -> str:
    compat, incompat = struct.unpack_from("<II", sb, 92)
    if incompat & 0x2C0:  # extents, 64bit, flex_bg
        return "ext4"
    if compat & 0x4:  # has_journal
        return "ext3"
    return "ext2"


def type_name(ptype: str) -> str:
    """A readable name of a partition type GUID / MBR type."""
    if ptype.startswith("0x"):
        return MBR_TYPES.get(int(ptype, 16), ptype)
    return GPT_TYPES.get(ptype, ptype)
