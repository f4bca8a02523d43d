"""Import sources: a raw image file, a block device, or a qcow2 file — each opened as a
thread-safe ``read(offset, length)`` plus the extents that may hold data, so holes
and unallocated qcow2 clusters are never read.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
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
from appliance.formats.chunkio import Extents, ReadFn, pread_fn, zeros

QCOW2_MAGIC = b"QFI\xfb"
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKGETSIZE64 = 0x80081272


@dataclass
class Source:
    path: Path
    kind: str  # "file" | "block" | "qcow2"
    size: int
    read: ReadFn
    extents: Extents | None
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    model: str = ""
    serial: str = ""


@contextlib.contextmanager
def open_source(path: Path, scratch: Path, tag: str = "x") -> Iterator[Source]:
    """Open ``path`` for import; ``scratch`` is a directory on the store's filesystem
    for a raw copy when a qcow2 file cannot be read in place (compressed clusters),
    named ``<tag>.qcow2-*`` so gc knows whose it is."""
    st = _stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"{path} is a directory, not a disk image",
            hint="give a raw image file, a qcow2 file or a block device",
        )
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UsageError(f"{path} is neither a file nor a block device")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SlateError(f"cannot open {path}: {exc.strerror}", hint="check permissions") from exc
    try:
        if stat.S_ISBLK(st.st_mode):
            yield _block(path, fd)
        elif os.pread(fd, 4, 0) == QCOW2_MAGIC:
            with _qcow2(path, fd, scratch, tag) as src:
                yield src
        else:
            yield _raw(path, fd, st.st_size)
    finally:
        os.close(fd)


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
    return Source(path, "file", size, pread_fn(fd), Extents(_data_extents(fd, size)))


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """Data regions of a sparse file (SEEK_DATA/SEEK_HOLE), or the whole file."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here on
                return
            yield (pos, size - pos)  # filesystem without SEEK_DATA: read it all
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield (start, end - start)
        pos = end


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


def _qemu_img(*args: str, path: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SlateError(
            f"cannot read qcow2 file {path}: qemu-img is not installed",
            hint="install qemu-utils (apt-get install qemu-utils)",
        ) from None


def _corrupt(path: Path, detail: str) -> IntegrityError:
    first = next((ln.strip() for ln in detail.splitlines() if ln.strip()), "no detail")
    return IntegrityError(
        f"{path} is a damaged qcow2 file: {first}",
        hint=f"`qemu-img check {path}` shows the damage; re-create or repair the file",
    )


@contextlib.contextmanager
def _qcow2(path: Path, fd: int, scratch: Path, tag: str) -> Iterator[Source]:
    check = _qemu_img("check", "-f", "qcow2", "--output=json", str(path), path=path)
    if check.returncode not in (0, 3):  # 3 = leaked clusters only: data is intact
        raise _corrupt(path, check.stderr or check.stdout)
    info = _qemu_img("info", "-f", "qcow2", "--output=json", str(path), path=path)
    mapped = _qemu_img("map", "-f", "qcow2", "--output=json", str(path), path=path)
    if info.returncode or mapped.returncode:
        raise _corrupt(path, info.stderr + mapped.stderr)
    size = int(json.loads(info.stdout)["virtual-size"])
    if size == 0:
        raise _empty(path)
    entries = json.loads(mapped.stdout)
    data = [e for e in entries if e.get("data")]
    if all("offset" in e and e.get("depth", 0) == 0 for e in data):
        file_size = os.fstat(fd).st_size
        if any(e["offset"] + e["length"] > file_size for e in data):
            raise _corrupt(path, "data clusters lie beyond the end of the file (truncated)")
        ext = Extents((e["start"], e["length"]) for e in data)
        yield Source(path, "qcow2", size, _mapped_reader(fd, data), ext)
        return
    # Compressed clusters or a backing chain: let qemu-img write a sparse raw copy.
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"{tag}.qcow2-") as tmp:
        raw = Path(tmp) / "disk.raw"
        conv = _qemu_img("convert", "-f", "qcow2", "-O", "raw", str(path), str(raw), path=path)
        if conv.returncode:
            raise _corrupt(path, conv.stderr)
        rfd = os.open(raw, os.O_RDONLY)
        try:
            yield Source(path, "qcow2", size, pread_fn(rfd), Extents(_data_extents(rfd, size)))
        finally:
            os.close(rfd)


def _mapped_reader(fd: int, data: list[dict[str, int]]) -> ReadFn:
    """Read virtual disk bytes straight from a qcow2 file's uncompressed clusters."""
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
                    raise IntegrityError(f"the qcow2 file ended early at virtual offset {lo}")
                out[lo - offset : hi - offset] = part
            i += 1
        return bytes(out)

    return read
