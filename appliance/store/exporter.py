"""``slate image export``: a version → raw files (sparse) or block devices."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from appliance.errors import Conflict, DiskRefused, IntegrityError, UsageError
from appliance.formats import chunkio
from appliance.formats.manifest import Disk, Manifest
from appliance.store.library import VERIFY_HINT, Store

BLKGETSIZE64 = 0x80081272


def export_image(
    store: Store,
    manifest: Manifest,
    dests: Sequence[Path],
    *,
    disk: int | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> list[chunkio.WriteStats]:
    """Write the version's disks (or only ``disk``) to ``dests``, one per disk.
    A file target appears under its name only once every chunk was verified and
    written; a failure leaves no file claiming to be the image."""
    disks = _select(manifest, dests, disk)
    for d in disks:
        _check_present(store, manifest, d)
    advance = progress(sum(d.size for d in disks)) if progress else None
    return [
        _export_disk(store, manifest, d, dest, force, workers, advance)
        for d, dest in zip(disks, dests, strict=True)
    ]


def _select(m: Manifest, dests: Sequence[Path], disk: int | None) -> list[Disk]:
    if disk is not None:
        if not 0 <= disk < len(m.disks):
            raise UsageError(f"{m.ref} has no disk {disk} (it has {len(m.disks)})")
        disks = [m.disks[disk]]
    else:
        disks = list(m.disks)
    if len(dests) != len(disks):
        raise UsageError(
            f"{m.ref} has {len(disks)} disk(s) but {len(dests)} destination(s) were given",
            hint="give one DEST per disk, or pick one disk with --disk N",
        )
    return disks


def _check_present(store: Store, m: Manifest, d: Disk) -> None:
    """Fail before writing a byte when a chunk file is missing."""
    missing = set(store.missing(sorted(d.digests())))
    for i, c in enumerate(d.chunks):
        if c.digest in missing:
            off = d.chunk_range(i)[0]
            raise IntegrityError(
                f"chunk {c.digest} of image {m.ref} (disk {d.index}, offset {off}) is "
                f"missing from the store ({len(missing)} chunk(s) missing in all)",
                hint=VERIFY_HINT,
            )


def _export_disk(
    store: Store,
    m: Manifest,
    d: Disk,
    dest: Path,
    force: bool,
    workers: int | None,
    advance: Callable[[int], None] | None,
) -> chunkio.WriteStats:
    what = f"image {m.ref}"
    if dest.is_block_device():
        with _open_block(dest, d) as fd:
            stats = chunkio.write_chunks(fd, d, store.read_frame, fresh=False, what=what,
                                         on_progress=advance, workers=workers)  # fmt: skip
            os.fsync(fd)
        return stats
    # No fsync for a file, like cp or zstd -d: the caller syncs if it needs to.
    with _fresh_file(dest, d.size, force) as fd:
        return chunkio.write_chunks(fd, d, store.read_frame, fresh=True, what=what,
                                    on_progress=advance, workers=workers)  # fmt: skip


@contextlib.contextmanager
def _open_block(dest: Path, d: Disk) -> Iterator[int]:
    try:
        fd = os.open(dest, os.O_RDWR | os.O_EXCL)
    except OSError as exc:
        raise DiskRefused(
            f"cannot open {dest} exclusively: {exc.strerror}",
            hint="unmount its filesystems and stop whatever uses it",
        ) from exc
    try:
        size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
        if size < d.size:
            raise DiskRefused(
                f"disk {d.index} ({d.size} bytes) will not fit {dest} ({size} bytes)",
                hint="use a disk at least as large as the image's disk",
            )
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _fresh_file(dest: Path, size: int, force: bool) -> Iterator[int]:
    """A new sparse file written as ``DEST.partial`` and renamed into place on success."""
    exists = dest.exists() or dest.is_symlink()
    if exists and (not force or not stat.S_ISREG(dest.lstat().st_mode)):
        raise Conflict(
            f"{dest} already exists", hint="remove it, or give --force to replace a file"
        )
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot create {partial}: {exc.strerror}") from exc
    try:
        os.ftruncate(fd, size)
        yield fd
    except BaseException:
        os.close(fd)
        partial.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(partial, dest)
