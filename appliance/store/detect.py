"""What is this file?  ``slate image import`` looks at a source's content (never at its
name) and says what it found — a raw disk and its partition table, a VM disk, a
partclone image, a FOG or Clonezilla image directory — or refuses what is none of
them (a text file, an ISO, a size that is not whole sectors, no partition table and no
filesystem), with ``--format raw`` as the way to insist.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import UsageError
from appliance.formats import partclone, partitions
from appliance.formats.chunkio import pread_fn

FORMATS = ("raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "partclone", "fog", "clonezilla")
QEMU_FORMATS = {"qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi"}
COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"\x04\x22\x4d\x18": "lz4",
    b"BZh": "bzip2",
}
SECTOR = 512
_INSIST = "`--format raw` imports it as a raw disk anyway"


@dataclass(frozen=True)
class Found:
    fmt: str  # one of FORMATS
    what: str  # said to the user: "raw disk, GPT, 4 partitions"


def compression(head: bytes) -> str:
    """ "gzip", "zstd", "xz", "lz4", "bzip2" or "" from a file's first bytes."""
    return next((name for magic, name in COMPRESSED.items() if head.startswith(magic)), "")


def identify(path: Path, head: bytes, size: int, fd: int) -> Found | None:
    """The format of the regular file ``path`` by its content, or None when it is
    nothing Slate knows (the caller decides whether to refuse it)."""
    if head[:4] == b"QFI\xfb":
        return Found("qcow2", "qcow2 VM disk")
    if head[:4] == b"KDMV" or head.startswith(b"# Disk DescriptorFile"):
        return Found("vmdk", "VMDK VM disk")
    if head[:8] == b"vhdxfile":
        return Found("vhdx", "VHDX VM disk")
    if len(head) >= 0x48 and struct.unpack_from("<I", head, 0x40)[0] == 0xBEDA107F:
        return Found("vdi", "VDI VM disk")
    if head[:8] == b"conectix":
        return Found("vhd", "VHD VM disk (dynamic)")
    if size >= SECTOR and size % SECTOR == 0 and os.pread(fd, 8, size - SECTOR) == b"conectix":
        return Found("vhd", "VHD VM disk (fixed)")
    if partclone.is_partclone(head):
        return Found("partclone", "partclone image")
    return None


def refusal(path: Path, head: bytes, size: int, fd: int) -> tuple[str, UsageError | None]:
    """For a file that :func:`identify` did not recognize: what it looks like as a
    raw disk ("raw disk, GPT, 4 partitions"), or the error refusing it."""
    comp = compression(head)
    if comp:
        return "", _refuse(
            path,
            f"is {comp}-compressed data that holds no partclone image",
            f"decompress it first; {_INSIST}",
        )
    if head[257:262] == b"ustar" or head[:4] == b"PK\x03\x04":
        return "", _refuse(path, "is an archive (tar or zip), not a disk image",
                           f"unpack it first; {_INSIST}")  # fmt: skip
    if os.pread(fd, 5, 0x8001) == b"CD001":
        return "", _refuse(path, "is an ISO 9660 CD/DVD image, not a disk image",
                           f"Slate images disks; {_INSIST}")  # fmt: skip
    if _is_text(head):
        hint = f"give a disk image, a VM disk or an image directory; {_INSIST}"
        return "", _refuse(path, "is a text file, not a disk image", hint)
    if size % SECTOR:
        return "", _refuse(
            path,
            f"is {size} bytes, not a whole number of {SECTOR}-byte sectors",
            f"a disk image's size is whole sectors (truncated copy?); {_INSIST}",
        )
    read = pread_fn(fd)
    table = partitions.detect(read, size, SECTOR)
    if table.kind != "none":
        n = len(table.partitions)
        return f"raw disk, {table.kind.upper()}, {n} partition{'s' * (n != 1)}", None
    fs = partitions.fs_type(read, 0)
    if fs:
        return f"raw {fs} filesystem (no partition table)", None
    return "", _refuse(
        path,
        "has no partition table and no filesystem Slate knows: it does not look like a disk",
        f"check the path; {_INSIST}",
    )


def identify_dir(path: Path) -> Found:
    names = {p.name for p in path.iterdir()}
    if "ecryptfs.info" in names:
        raise UsageError(
            f"{path} is an encrypted Clonezilla image (ecryptfs), which Slate cannot read",
            hint="decrypt it with Clonezilla first (ocs-decrypt-img), then import the copy",
        )
    if any(n.startswith("d1") and n[2:3] in (".", "p") for n in names):
        return Found("fog", "FOG image directory")
    if {"disk", "parts"} & names or "clonezilla-img" in names:
        return Found("clonezilla", "Clonezilla image directory")
    raise UsageError(
        f"{path} is a directory that is neither a FOG nor a Clonezilla image",
        hint="give a disk image file, a block device, or a FOG/Clonezilla image directory",
    )


def is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _is_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)


def _refuse(path: Path, what: str, hint: str) -> UsageError:
    return UsageError(f"{path} {what}", hint=hint)
