"""``slate image fit NAME@V --size SIZE``: a derived version for a smaller disk.

The disk is written out (every chunk verified) to a sparse scratch file on the store's
filesystem; its last partition's filesystem is checked and shrunk (ext2/3/4 with
e2fsck + resize2fs, NTFS with ntfsresize), the partition is shrunk to end before SIZE
(on a 1 MiB boundary, room left for GPT's backup table), the file is cut to SIZE, the
GPT backup header moved to its new end, the filesystem checked again, and the result is
imported as a new version of the same image: the store keeps only the chunks that
changed (the resized filesystem's metadata, the partition table), and the version is
committed atomically, as a candidate unless the image's policy auto-promotes.

Refused, before anything is stored, when the image has no partition table, the last
partition is not a filesystem this can resize, the data does not fit, or an NTFS volume
holds a hibernated or Fast-Startup session.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import SlateError, UsageError
from appliance.formats.manifest import Disk, Manifest, Partition
from appliance.store.exporter import export_image
from appliance.store.importer import import_disk
from appliance.store.library import Session, Store
from appliance.store.sources import open_source
from appliance.timestamps import utc_now

MIB = 1024 * 1024
RESIZABLE = ("ext2", "ext3", "ext4", "ntfs")
HIBERFILE_HEADER = 4096
GPT_BACKUP_SECTORS = 33  # backup header + 128 entries of 128 bytes, in 512-byte sectors
_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024**3, "t": 1024**4}
_DECIMAL = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


class FitRefused(UsageError):
    """The version cannot be fitted to the size (the message says why)."""


@dataclass(frozen=True)
class FitResult:
    manifest: Manifest
    source: Manifest
    disk: int
    partition: int
    old_size: int
    new_size: int
    minimum: int  # the smallest the last partition's filesystem can be, in bytes
    new_chunks: int
    new_bytes: int


def parse_size(text: str) -> int:
    """Bytes from ``120034123776``, ``100G``/``100GiB`` (binary) or ``120GB`` (decimal)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(ib|b)?", text.strip().lower())
    if not m or (m.group(3) == "ib" and not m.group(2)):
        raise UsageError(
            f"{text!r} is not a size",
            hint="give bytes (e.g. 120034123776, as the restore's message says), or 100GiB, 120GB",
        )
    number, unit, suffix = m.groups()
    if unit and suffix == "b":
        return int(float(number) * _DECIMAL[unit + "b"])
    return int(float(number) * _UNITS[unit])


def fit(store: Store, manifest: Manifest, size: int, *, disk: int = 0, note: str = "") -> FitResult:
    """Make the fitted version of ``manifest`` (see the module's docstring)."""
    if not 0 <= disk < len(manifest.disks):
        raise UsageError(f"{manifest.ref} has no disk {disk} (it has {len(manifest.disks)})")
    d = manifest.disks[disk]
    last = check(manifest, d, size)
    ss = d.logical_sector_size
    end = _usable_end(d, size)
    new_part = end - last.start
    session = Session(store, candidate=True)
    try:
        scratch = store.root / "tmp" / f"{session.id}.fit.img"  # gc keeps a live session's
        try:
            export_image(store, manifest, [scratch], disk=disk)
            minimum = _shrink_fs(scratch, last, new_part, manifest.ref)
            _shrink_table(scratch, last, new_part // ss, size, d.table)
            _check_fs(scratch, dataclasses.replace(last, size=new_part))
            with open_source(scratch, store.root / "tmp", session.id) as src:
                new_disk, new_chunks, new_bytes = import_disk(session, disk, src, d.chunk_size)
        finally:
            scratch.unlink(missing_ok=True)
        new_disk = dataclasses.replace(new_disk, model=d.model, serial=d.serial)
        disks = tuple(new_disk if x.index == disk else x for x in manifest.disks)
        created = utc_now()
        said = note or f"fitted from {manifest.version} to {size} bytes (disk {disk})"
        fitted = Manifest(manifest.image, store.new_version_id(manifest.image), created,
                          said, f"slate image fit {manifest.ref}", disks=disks)  # fmt: skip
        committed = session.commit(fitted)
    except BaseException:
        session.abort()
        raise
    finally:
        session.close()
    return FitResult(committed, manifest, disk, last.number, d.size, size, minimum,
                     new_chunks, new_bytes)  # fmt: skip


def check(manifest: Manifest, d: Disk, size: int) -> Partition:
    """The partition to shrink, or FitRefused saying why not."""
    what = f"{manifest.ref} disk {d.index}"
    if size >= d.size:
        raise FitRefused(
            f"{what} is {d.size} bytes: it already fits {size} bytes",
            hint="restore it as it is (the restore can grow it: `--grow`)",
        )
    if size % d.logical_sector_size:
        raise FitRefused(f"{size} bytes is not a whole number of "
                         f"{d.logical_sector_size}-byte sectors")  # fmt: skip
    if d.table not in ("gpt", "mbr") or not d.partitions:
        raise FitRefused(f"{what} has no partition table: there is no last partition to shrink")
    last = max(d.partitions, key=lambda p: p.start)
    if last.fs not in RESIZABLE:
        raise FitRefused(
            f"the last partition of {what} (partition {last.number}, "
            f"{last.fs or 'no known filesystem'}) is not a filesystem Slate can resize",
            hint="only ext2/ext3/ext4 (resize2fs) and NTFS (ntfsresize) can be shrunk; "
            "capture the image from a smaller disk instead",
        )
    others = [p for p in d.partitions if p is not last and p.start + p.size > _usable_end(d, size)]
    end = _usable_end(d, size)
    if end - last.start < MIB or others:
        raise FitRefused(
            f"{size} bytes is too small for {what}: its last partition starts at byte {last.start}",
            hint="only the last partition is shrunk; the ones before it must fit as they are",
        )
    return last


def _usable_end(d: Disk, size: int) -> int:
    """Where the shrunk last partition ends (exclusive), on a 1 MiB boundary."""
    room = size - (GPT_BACKUP_SECTORS * 512 + d.logical_sector_size if d.table == "gpt" else 0)
    return room // MIB * MIB


def _run(cmd: list[str], what: str, *, ok: tuple[int, ...] = (0,), stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        hint = "install e2fsprogs, ntfs-3g and gdisk (./run does)"
        raise SlateError(f"cannot {what}: {cmd[0]} is not installed", hint=hint) from exc
    if proc.returncode not in ok:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise SlateError(f"cannot {what}: {' '.join(cmd)} exited {proc.returncode}: {tail}")
    return proc.stdout


@contextmanager
def _loop(path: Path, part: Partition) -> Iterator[str]:
    dev = _run(["losetup", "--find", "--show", "--offset", str(part.start), "--sizelimit",
                str(part.size), str(path)], "attach a loop device").strip()  # fmt: skip
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], capture_output=True, check=False)


def _shrink_fs(path: Path, part: Partition, new_size: int, ref: str) -> int:
    """Shrink the filesystem of ``part`` to at most ``new_size`` bytes; its minimum."""
    with _loop(path, part) as dev:
        if part.fs.startswith("ext"):
            _run(["e2fsck", "-f", "-y", dev], f"check the {part.fs} filesystem", ok=(0, 1))
            out = _run(["resize2fs", "-P", dev], "measure the filesystem's minimum size")
            blocks = int(re.search(r"minimum size of the filesystem: (\d+)", out).group(1))  # type: ignore[union-attr]
            info = _run(["dumpe2fs", "-h", dev], "read the filesystem's block size")
            block = int(re.search(r"Block size:\s+(\d+)", info).group(1))  # type: ignore[union-attr]
            minimum = blocks * block
            _refuse_if_short(ref, part, minimum, new_size)
            _run(["resize2fs", dev, f"{new_size // 1024}K"], f"shrink the {part.fs} filesystem")
            return minimum
        _refuse_if_hibernated(dev, ref, part)
        out = _run(["ntfsresize", "--info", "--force", "--no-progress-bar", dev],
                   "measure the NTFS volume", ok=(0, 1))  # fmt: skip
        found = re.search(r"You might resize at (\d+) bytes", out)
        if found is None:
            raise FitRefused(
                f"ntfsresize cannot tell how small partition {part.number} of {ref} can be: "
                + " | ".join(out.strip().splitlines()[-2:]),
                hint="a hibernated, Fast-Startup or damaged NTFS volume cannot be resized: "
                "shut Windows down fully (or run chkdsk) and capture again",
            )
        minimum = int(found.group(1))
        _refuse_if_short(ref, part, minimum, new_size)
        _run(["ntfsresize", "--force", "--force", "--no-progress-bar", "--size", str(new_size),
              dev], "shrink the NTFS volume", stdin="y\n")  # fmt: skip
        # ntfsresize marks the volume for a chkdsk at Windows' next boot; a restored room
        # would run it at every boot of every machine.  Like FOG, clear the mark (the
        # volume is checked here instead, by _check_fs).
        _run(["ntfsfix", "--clear-dirty", dev], "clear the NTFS volume's check mark")
        return minimum


def _refuse_if_hibernated(dev: str, ref: str, part: Partition) -> None:
    """ntfsresize resizes a hibernated (or Fast-Startup) volume without a word, and the
    session saved in hiberfil.sys would then resume onto a filesystem that moved under
    it.  ntfs-3g's own test: a hiberfil.sys whose header is shorter than 4 KiB or starts
    with "hibr"."""
    listing = _run(["ntfsls", dev], "list the NTFS volume's root folder")
    name = next((n for n in listing.split() if n.lower() == "hiberfil.sys"), None)
    if name is None:
        return
    proc = subprocess.Popen(["ntfscat", dev, name], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    head = proc.stdout.read(HIBERFILE_HEADER)  # of a file as large as the RAM: stop here
    proc.kill()
    proc.wait()
    if head and (len(head) < HIBERFILE_HEADER or head[:4].lower() == b"hibr"):
        raise FitRefused(
            f"partition {part.number} of {ref} is a hibernated or Fast-Startup Windows volume:"
            " it cannot be resized (the saved session would resume onto a moved filesystem)",
            hint="on the reference machine turn Fast Startup off (powercfg /h off) and shut"
            " Windows down fully, then capture again",
        )


def _refuse_if_short(ref: str, part: Partition, minimum: int, new_size: int) -> None:
    if minimum > new_size:
        raise FitRefused(
            f"the data does not fit: partition {part.number} of {ref} ({part.fs}) needs at "
            f"least {minimum} bytes ({minimum / MIB:,.0f} MiB), {new_size} bytes "
            f"({new_size / MIB:,.0f} MiB) are left for it",
            hint="give a larger --size, or free space on the reference machine and capture again",
        )


def _shrink_table(path: Path, part: Partition, sectors: int, size: int, table: str) -> None:
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-N", str(part.number), str(path)],
         f"shrink partition {part.number}", stdin=f", {sectors}\n")  # fmt: skip
    os.truncate(path, size)
    if table == "gpt":  # the backup header and table to the new last sectors
        _run(["sgdisk", "-e", str(path)], "move the GPT backup header to the new end", ok=(0, 2))
        _run(["sgdisk", "-v", str(path)], "verify the new GPT")


def _check_fs(path: Path, part: Partition) -> None:
    with _loop(path, part) as dev:
        if part.fs.startswith("ext"):
            _run(["e2fsck", "-f", "-n", dev], f"check the shrunk {part.fs} filesystem")
        else:
            _run(["ntfsfix", "--no-action", dev], "check the shrunk NTFS volume")
