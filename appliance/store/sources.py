"""Import sources: a raw image file, a block device, a VM disk (qcow2, VMDK, VHD, VHDX,
VDI through ``qemu-img``), a partclone image or a FOG image directory — each opened as
a thread-safe ``read(offset, length)`` plus the extents that may hold data, so holes,
unallocated clusters and free filesystem blocks are never read.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import IntegrityError, NotFound, SlateError, UsageError
from appliance.formats import partitions
from appliance.formats.chunkio import Extents, ReadFn, pread_fn, zeros
from appliance.formats.manifest import UNUSED, ZERO, Chunk
from appliance.store.clonezilla import clonezilla_disks
from appliance.store.detect import (
    FORMATS,
    QEMU_FORMATS,
    Found,
    compression,
    identify,
    identify_dir,
    refusal,
)
from appliance.store.fog import fog_disks
from appliance.store.foreign import Disk, data_extents, partclone_disk, peek_partclone

BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKGETSIZE64 = 0x80081272


@dataclass
class Source:
    path: Path
    kind: str  # "file" | "block" | "qcow2" | "vmdk" | … | "partclone" | "fog"
    size: int
    read: ReadFn
    extents: Extents | None
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    model: str = ""
    serial: str = ""
    hole: Chunk = ZERO  # what a chunk outside ``extents`` is: zero, or unused (partclone)
    what: str = ""  # what the import found, said to the user


@contextlib.contextmanager
def open_source(path: Path, scratch: Path, tag: str = "x") -> Iterator[Source]:
    """Open ``path`` (a raw file, block device or VM disk) as one disk for import;
    ``scratch`` is a directory on the store's filesystem for a raw copy when a VM disk
    cannot be read in place (compressed clusters), named ``<tag>.<format>-*`` so gc
    knows whose it is."""
    with open_sources(path, scratch, tag) as sources:
        if len(sources) != 1:
            raise UsageError(f"{path} holds {len(sources)} disks; give one disk")
        yield sources[0]


@contextlib.contextmanager
def open_sources(
    path: Path, scratch: Path, tag: str = "x", fmt: str = "any"
) -> Iterator[list[Source]]:
    """The disk(s) of ``path`` for import.  ``fmt`` is one of
    :data:`appliance.store.detect.FORMATS` to force it, ``"auto"`` to recognize the
    format by content and refuse what is not a disk image, or ``"any"`` (the library's
    default) to recognize it and read anything else as a raw disk."""
    if fmt not in ("auto", "any", *FORMATS):
        raise UsageError(f"unknown image format {fmt!r}", hint=f"one of: {', '.join(FORMATS)}")
    st = _stat(path)
    if stat.S_ISDIR(st.st_mode):
        found = identify_dir(path)
        if fmt not in ("auto", "any", found.fmt):
            raise UsageError(f"{path} is a directory ({found.what}), not a {fmt} image")
        if found.fmt == "fog":
            with fog_disks(path, scratch, tag) as disks:
                yield [_unpacked(path, "fog", d) for d in disks]
            return
        with clonezilla_disks(path, scratch, tag) as disks:
            yield [_unpacked(path, "clonezilla", d) for d in disks]
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UsageError(f"{path} is neither a file nor a block device")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SlateError(f"cannot open {path}: {exc.strerror}", hint="check permissions") from exc
    try:
        if stat.S_ISBLK(st.st_mode):
            src = _block(path, fd)
            src.what = f"block device, {_table_words(src)}"
            yield [src]
            return
        found = _identify_file(path, fd, st.st_size, fmt)
        if found.fmt in QEMU_FORMATS:
            with _qemu(path, fd, found.fmt, scratch, tag) as src:
                src.what = found.what
                yield [src]
        elif found.fmt == "partclone":
            with partclone_disk(path, scratch, tag) as disk:
                yield [_unpacked(path, "partclone", disk)]
        elif found.fmt in ("fog", "clonezilla"):
            raise UsageError(f"{path} is a file; a {found.fmt} image is a directory",
                             hint="give the image's directory")  # fmt: skip
        else:
            src = _raw(path, fd, st.st_size)
            src.what = found.what
            yield [src]
    finally:
        os.close(fd)


def _identify_file(path: Path, fd: int, size: int, fmt: str) -> Found:
    if fmt not in ("auto", "any"):
        return Found(fmt, "raw disk (--format raw)" if fmt == "raw" else f"{fmt} (--format)")
    if size == 0:
        raise _empty(path)
    head = os.pread(fd, 4096, 0)
    found = identify(path, head, size, fd)
    if found is None and compression(head):
        hdr = peek_partclone(path)
        found = Found("partclone", "partclone image") if hdr else None
    if found is None:
        what, err = refusal(path, head, size, fd)
        if err is not None and fmt == "auto":
            raise err
        found = Found("raw", what or "raw data (no partition table)")
    return found


def _table_words(src: Source) -> str:
    table = partitions.detect(src.read, src.size, src.logical_sector_size)
    if table.kind == "none":
        return "no partition table"
    n = len(table.partitions)
    return f"{table.kind.upper()}, {n} partition{'s' * (n != 1)}"


def _unpacked(path: Path, kind: str, disk: Disk) -> Source:
    return Source(path, kind, disk.size, pread_fn(disk.scratch.fd), Extents(disk.scratch.used),
                  hole=UNUSED, what=disk.what)  # fmt: skip


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise NotFound(
            f"{path} does not exist", hint="give the path of a disk image or block device"
        ) from None
    except OSError as exc:
        raise SlateError(f"cannot read {path}: {exc.strerror}") from exc


def _empty(path: Path) -> UsageError:
    return UsageError(f"{path} is empty (0 bytes)", hint="a disk image holds at least one sector")


def _raw(path: Path, fd: int, size: int) -> Source:
    if size == 0:
        raise _empty(path)
    return Source(path, "file", size, pread_fn(fd), Extents(data_extents(fd, size)))


def _block(path: Path, fd: int) -> Source:
    size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
    if size == 0:
        raise _empty(path)
    logical = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0]
    physical = struct.unpack("I", fcntl.ioctl(fd, BLKPBSZGET, b"\0" * 4))[0]
    sysdir = Path("/sys/class/block") / Path(os.path.realpath(path)).name / "device"
    return Source(
        path,
        "block",
        size,
        pread_fn(fd),
        None,
        logical_sector_size=logical,
        physical_sector_size=max(physical, logical),
        model=_sysfs(sysdir / "model"),
        serial=_sysfs(sysdir / "serial") or _sysfs(sysdir / "wwid"),
    )


def _sysfs(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _qemu_img(*args: str, path: Path, label: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SlateError(
            f"cannot read {label} file {path}: qemu-img is not installed",
            hint="install qemu-utils (apt-get install qemu-utils)",
        ) from None


def _corrupt(path: Path, detail: str, label: str = "qcow2") -> IntegrityError:
    first = next((ln.strip() for ln in detail.splitlines() if ln.strip()), "no detail")
    return IntegrityError(
        f"{path} is a damaged {label} file: {first}",
        hint=f"`qemu-img check {path}` shows the damage; re-create or repair the file",
    )


_CHECKABLE = {"qcow2", "vmdk", "vhdx", "vdi"}  # `qemu-img check` has no check for vpc (VHD)


@contextlib.contextmanager
def _qemu(path: Path, fd: int, fmt: str, scratch: Path, tag: str) -> Iterator[Source]:
    """A VM disk through qemu-img: allocated extents (``qemu-img map``) read in place
    where they are plain data in this very file, else a sparse raw copy in scratch."""
    qfmt = QEMU_FORMATS[fmt]
    label = fmt if fmt == "qcow2" else fmt.upper()

    def qemu(*args: str) -> subprocess.CompletedProcess[str]:
        return _qemu_img(*args[:1], "-f", qfmt, *args[1:], str(path), path=path, label=label)

    if qfmt in _CHECKABLE:
        check = qemu("check", "--output=json")
        if check.returncode not in (0, 3):  # 3 = leaked clusters only: data is intact
            raise _corrupt(path, check.stderr or check.stdout, label)
    info, mapped = qemu("info", "--output=json"), qemu("map", "--output=json")
    if info.returncode or mapped.returncode:
        raise _corrupt(path, info.stderr + mapped.stderr, label)
    size = int(json.loads(info.stdout)["virtual-size"])
    if size == 0:
        raise _empty(path)
    entries = json.loads(mapped.stdout)
    data = [e for e in entries if e.get("data")]
    # A VMDK descriptor names its extents in other files: map offsets are theirs.
    in_place = fmt != "vmdk" or os.pread(fd, 4, 0) == b"KDMV"
    if in_place and all(
        "offset" in e and e.get("depth", 0) == 0 and not e.get("compressed") for e in data
    ):
        file_size = os.fstat(fd).st_size
        if any(e["offset"] + e["length"] > file_size for e in data):
            raise _corrupt(path, "data clusters lie beyond the end of the file (truncated)", label)
        ext = Extents((e["start"], e["length"]) for e in data)
        yield Source(path, fmt, size, _mapped_reader(fd, data), ext)
        return
    # Compressed clusters, a backing chain or extents elsewhere: a sparse raw copy.
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"{tag}.{fmt}-") as tmp:
        raw = Path(tmp) / "disk.raw"
        conv = _qemu_img("convert", "-f", qfmt, "-O", "raw", str(path), str(raw), path=path,
                         label=label)  # fmt: skip
        if conv.returncode:
            raise _corrupt(path, conv.stderr, label)
        rfd = os.open(raw, os.O_RDONLY)
        try:
            yield Source(path, fmt, size, pread_fn(rfd), Extents(data_extents(rfd, size)))
        finally:
            os.close(rfd)


def _mapped_reader(fd: int, data: list[dict[str, int]]) -> ReadFn:
    """Read virtual disk bytes straight from a VM disk file's uncompressed clusters."""
    starts = [e["start"] for e in data]
    pread = pread_fn(fd)

    def read(offset: int, length: int) -> bytes:
        out = bytearray(zeros(length))
        i = max(bisect.bisect_right(starts, offset) - 1, 0)
        end = offset + length
        while i < len(data) and data[i]["start"] < end:
            e = data[i]
            lo, hi = max(offset, e["start"]), min(end, e["start"] + e["length"])
            if lo < hi:
                part = pread(e["offset"] + lo - e["start"], hi - lo)
                if len(part) != hi - lo:
                    raise IntegrityError(f"the VM disk file ended early at virtual offset {lo}")
                out[lo - offset : hi - offset] = part
            i += 1
        return bytes(out)

    return read
