"""Where restored bytes go.  bmaptool's shape: :class:`FileTarget` writes to any file
(tests use sparse files); :class:`BlockTarget` adds the safety checks of a real disk —
exclusive open (the kernel refuses ``O_EXCL`` on a mounted or held device), never the
disk the running system lives on, size and sector size from the kernel."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from pathlib import Path

from appliance.errors import DiskRefused

BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKRRPART = 0x125F


class FileTarget:
    """A file opened for positional reads and writes."""

    is_block = False

    direct_fd: int | None = None

    def __init__(self, path: str, *, writable: bool = True) -> None:
        self.path = path
        self.writable = writable
        self.fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)

    def open_direct(self) -> int | None:
        """A second descriptor of the same target with ``O_DIRECT`` (chunks go to the
        disk without a page-cache copy), or None where the filesystem refuses it.  For
        a block device it is opened after :attr:`fd` holds the exclusive claim."""
        if self.direct_fd is None:
            flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC
            try:
                self.direct_fd = os.open(self.path, flags | os.O_DIRECT)
            except OSError:
                return None
        return self.direct_fd

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    @property
    def logical_sector_size(self) -> int | None:
        return None  # a file has no sectors: any image's sector size is fine

    @property
    def physical_sector_size(self) -> int | None:
        return None

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n

    def fsync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.direct_fd is not None:
            os.close(self.direct_fd)
            self.direct_fd = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> FileTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlockTarget(FileTarget):
    """A whole block device, opened exclusively after the busy checks."""

    is_block = True

    def __init__(self, path: str, *, writable: bool = True) -> None:
        reason = busy_reason(path)
        if reason:
            raise DiskRefused(f"refusing {path}: {reason}", hint="unmount it or pick another disk")
        self.path = path
        self.writable = writable
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC | os.O_EXCL
        try:
            self.fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise DiskRefused(
                    f"refusing {path}: it is in use (mounted, swap, RAID/LVM member, or open)",
                    hint="unmount it or pick another disk",
                ) from exc
            raise DiskRefused(f"cannot open {path}: {exc.strerror}") from exc

    def _ioctl(self, request: int, fmt: str) -> int:
        buf = fcntl.ioctl(self.fd, request, b"\0" * struct.calcsize(fmt))
        return int(struct.unpack(fmt, buf)[0])

    @property
    def size(self) -> int:
        return self._ioctl(BLKGETSIZE64, "Q")

    @property
    def logical_sector_size(self) -> int:
        return self._ioctl(BLKSSZGET, "i")

    @property
    def physical_sector_size(self) -> int:
        return self._ioctl(BLKPBSZGET, "I")

    @property
    def removable(self) -> bool:
        sysdir = _sys_block(self.path)
        try:
            return sysdir is not None and (sysdir / "removable").read_text().strip() == "1"
        except OSError:
            return False

    def reread_partitions(self) -> None:
        fcntl.ioctl(self.fd, BLKRRPART)


def open_target(path: str, *, writable: bool = True) -> FileTarget:
    mode = os.stat(path).st_mode
    if stat.S_ISBLK(mode):
        return BlockTarget(path, writable=writable)
    if stat.S_ISREG(mode):
        return FileTarget(path, writable=writable)
    raise DiskRefused(f"{path} is neither a block device nor a file")


def _sys_block(path: str) -> Path | None:
    """/sys/class/block/<name> of a block device node."""
    rdev = os.stat(path).st_rdev
    link = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    return link.resolve() if link.exists() else None


def busy_reason(path: str) -> str | None:
    """Why a whole disk must not be written (None = not busy): the running system's
    disk, a mounted or swapped partition, or a partition held by RAID/LVM/dm."""
    sysdir = _sys_block(path)
    if sysdir is None:
        return None
    names = {sysdir.name} | {p.name for p in sysdir.iterdir() if (p / "partition").exists()}
    if any(_holders(sysdir / n if n != sysdir.name else sysdir) for n in names):
        return "a partition is held by device-mapper, LVM or RAID"
    mounted = _mounted_names()
    hit = sorted(names & mounted)
    if hit:
        return f"{', '.join('/dev/' + n for n in hit)} is mounted or used as swap"
    root = _root_disk()
    if root and root == sysdir.name:
        return "it holds the running system's root filesystem"
    return None


def _holders(sysdir: Path) -> list[str]:
    holders = sysdir / "holders"
    return [p.name for p in holders.iterdir()] if holders.is_dir() else []


def _mounted_names() -> set[str]:
    names: set[str] = set()
    for table, col in (("/proc/mounts", 0), ("/proc/swaps", 0)):
        try:
            lines = Path(table).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields and fields[col].startswith("/dev/"):
                try:
                    real = os.path.realpath(fields[col])
                    names.add(os.path.basename(real))
                except OSError:
                    pass
    return names


def _root_disk() -> str | None:
    dev = os.stat("/").st_dev
    link = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not link.exists():
        return None  # root on tmpfs/initramfs: no disk is the system disk
    real = link.resolve()
    return real.parent.name if (real / "partition").exists() else real.name


def is_fresh(target: FileTarget) -> bool:
    """A regular file with no data blocks: nothing to compare, holes can stay holes."""
    st = os.fstat(target.fd)
    return stat.S_ISREG(st.st_mode) and st.st_blocks == 0
