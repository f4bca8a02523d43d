"""After the disks are written and verified: each restored machine its own identity.

The job carries it (``identity``: host name and the machine-id the appliance keeps for
this machine; see appliance/machines/identity.py).  Every partition of a known filesystem is
looked at: an NTFS volume holding Windows gets the computer name in its SYSTEM hive, a
Linux root (ext4, xfs, btrfs) its host name, /etc/hosts line, machine-id and SSH host
keys.  Each thing set is logged with where; what could not be set is logged as a
WARNING and returned, and the job's log says so (a BitLocker volume is never touched).
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.errors import DiskRefused, SlateError
from appliance.formats import partitions
from appliance.formats.chunkio import pread_fn
from appliance.formats.manifest import Partition
from bootimage.client import linuxroot, windows
from bootimage.client.api import API, Api
from bootimage.client.loopdev import attached, load_module, run
from bootimage.client.target import BLKSSZGET

LINUX_FS = ("ext2", "ext3", "ext4", "xfs", "btrfs")
Log = Callable[[str], None]


def apply(api: Api, paths: Sequence[str], ident: dict[str, Any] | None, log: Log) -> list[str]:
    """Set the identity in every restored disk at ``paths``; returns the problems."""
    ident = ident or {}
    if not ident.get("hostname"):
        log("identity: this appliance sent none; the restored systems keep the image's")
        return []
    if not ident.get("enabled", True):
        log("identity: off for this image (sysprep or cloud-init sets it); nothing written")
        return []
    hostname, machine_id = str(ident["hostname"]), str(ident.get("machine_id") or "")
    keys = kept_host_keys(api, ident, log)
    problems: list[str] = []
    found = 0
    for path in paths:
        try:
            found_parts = _partitions(path)
        except (SlateError, OSError) as exc:  # the disk is verified: say it, go on
            why = exc.message if isinstance(exc, SlateError) else str(exc)
            log(f"identity: WARNING: {path}: identity not set: {why}")
            problems.append(f"{path}: identity not set: {why}")
            continue
        for part in found_parts:
            try:
                found += _one(path, part, hostname, machine_id, keys, problems, log)
            except (SlateError, OSError) as exc:  # the disk is verified: say it, go on
                why = exc.message if isinstance(exc, SlateError) else str(exc)
                text = f"{path} partition {part.number}: identity not set: {why}"
                log(f"identity: WARNING: {text}")
                problems.append(text)
    if not found:
        log("identity: no Windows or Linux system found on the restored disk(s)")
    return problems


def kept_host_keys(api: Api, ident: dict[str, Any], log: Log) -> list[dict[str, str]] | None:
    """The machine's kept SSH host keys — asked for only over the pinned TLS channel
    (they are secrets) — or None: the restored system gets fresh ones."""
    if ident.get("ssh_host_keys") != "stable" or not getattr(api, "secure", False):
        log("identity: SSH host keys: fresh ones for this restore (the client channel is not"
            " pinned TLS, so the machine's kept keys are not sent)")  # fmt: skip
        return None
    try:
        keys = list(api.get_json(API + "/identity/ssh-host-keys").get("keys") or [])
    except SlateError as exc:
        log(f"identity: WARNING: the machine's kept SSH host keys: {exc.message}; fresh ones")
        return None
    log(f"identity: SSH host keys: this machine's kept {len(keys)} key(s), over TLS")
    return keys


def _partitions(path: str) -> list[Partition]:
    """The partitions of the disk's table as it is now (after any grow), each with its
    filesystem by its magic — the pure-Python reader import and capture use, no sfdisk
    or blkid process per disk and partition — or the whole disk when it has none.

    Opened without O_EXCL: the restore (or capture) holds the disk exclusively itself."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        read = pread_fn(fd)
        size = os.lseek(fd, 0, os.SEEK_END)
        sector = 512
        if stat.S_ISBLK(os.fstat(fd).st_mode):
            (sector,) = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))
        table = partitions.detect(read, size, sector)
        if table.kind == "none":  # the whole disk may be one filesystem
            return [Partition(0, 0, size, "", fs=partitions.fs_type(read, 0))]
        return list(table.partitions)
    finally:
        os.close(fd)


def _one(
    path: str,
    part: Partition,
    hostname: str,
    machine_id: str,
    keys: list[dict[str, str]] | None,
    problems: list[str],
    log: Log,
) -> int:
    where = f"{path} partition {part.number}"
    with open(path, "rb") as f:
        f.seek(part.start)
        if windows.is_bitlocker(f.read(512)):
            text = f"{where} is BitLocker-encrypted: left untouched; its computer name was not set"
            log(f"identity: WARNING: {text}")
            problems.append(text)
            return 1
    fs = part.fs
    if fs != "ntfs" and fs not in LINUX_FS:
        return 0  # a loop device is attached only for a system's filesystem
    with attached(path, part.start, part.size, read_only=False) as dev:
        if fs == "ntfs":
            return _windows(dev, where, hostname, problems, log)
        return _linux(dev, fs, where, hostname, machine_id, keys, problems, log)


def _windows(dev: str, where: str, hostname: str, problems: list[str], log: Log) -> int:
    try:
        with ntfs_mounted(dev, log, where) as mnt:
            hive = windows.find_path(mnt, windows.SYSTEM_HIVE)
            if hive is None:
                return 0  # a data volume
            done, missing = windows.set_computer_name(hive, hostname)
    except SlateError as exc:
        text = f"{where}: the Windows computer name could not be set: {exc.message}"
        log(f"identity: WARNING: {text}")
        problems.append(text)
        return 1
    log(f"identity: Windows on {where}: computer name {windows.netbios_name(hostname)}, set in")
    for item in done:
        log(f"  SYSTEM\\{item}")
    for item in missing:
        log(f"  (SYSTEM\\{item} is not in the hive: not set)")
    if not done:
        problems.append(f"{where}: the SYSTEM hive has none of the computer name keys")
    return 1


def _linux(
    dev: str,
    fs: str,
    where: str,
    hostname: str,
    machine_id: str,
    keys: list[dict[str, str]] | None,
    problems: list[str],
    log: Log,
) -> int:
    with mounted(dev, fs) as mnt:
        roots = linuxroot.roots_in(mnt)
        for root in roots:
            sub = f" (subvolume {root.name})" if root != mnt else ""
            log(f"identity: Linux ({fs}) on {where}{sub}: host name {hostname}")
            failed = linuxroot.apply(root, hostname, machine_id, log, keys=keys)
            problems += [f"{where}: {item} could not be set" for item in failed]
    return len(roots)


@contextmanager
def mounted(dev: str, fs: str) -> Iterator[Path]:
    load_module(fs if fs != "ext2" and fs != "ext3" else "ext4")
    # nouuid: restored copies of one xfs image share its UUID (as do btrfs ones; a
    # single-device btrfs mounts anyway).
    opts = ["-o", "nouuid"] if fs == "xfs" else []
    with tempfile.TemporaryDirectory(prefix="slate-id-") as tmp:
        run(["mount", "-t", fs, *opts, dev, tmp], f"mount the {fs} filesystem on {dev}")
        try:
            yield Path(tmp)
        finally:
            run(["umount", tmp], f"unmount {dev}")


@contextmanager
def ntfs_mounted(dev: str, log: Log, where: str, *, read_only: bool = False) -> Iterator[Path]:
    """ntfs-3g in the foreground (``no_detach``): after ``umount`` the process exits only
    once everything is on the disk, so the loop device is not detached under it.

    A hibernated or Fast-Startup volume is one ntfs-3g will not write: it falls back to a
    read-only mount.  Read-write wanted, such a volume is mounted again with
    ``remove_hiberfile`` (the saved session belonged to the reference machine; Windows
    then starts cold), and the log says so."""
    load_module("fuse")
    with tempfile.TemporaryDirectory(prefix="slate-ntfs-") as tmp:
        proc = _ntfs3g(dev, tmp, ["ro"] if read_only else [])
        if not read_only and _read_only(tmp):
            why = _unmount(tmp, proc)
            if "hibernat" not in why and "Windows cache" not in why and "fast rest" not in why:
                raise SlateError(f"ntfs-3g mounts {dev} read-only only: {why}")
            log(
                f"identity: {where} was hibernated or shut down with Fast Startup; ntfs-3g"
                " removes its hibernation file so it can be written (Windows starts cold)"
            )
            proc = _ntfs3g(dev, tmp, ["remove_hiberfile"])
            if _read_only(tmp):
                raise SlateError(f"ntfs-3g mounts {dev} read-only only: {_unmount(tmp, proc)}")
        try:
            yield Path(tmp)
        finally:
            _unmount(tmp, proc)


def _read_only(mnt: str) -> bool:
    return bool(os.statvfs(mnt).f_flag & os.ST_RDONLY)


def _ntfs3g(dev: str, mnt: str, opts: list[str]) -> subprocess.Popen[str]:
    """The running ntfs-3g, once ``mnt`` is mounted (its messages in ``proc.stderr``, a
    file: nobody reads a pipe while it is mounted); SlateError with its reason if not."""
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by _unmount)
    try:
        proc = subprocess.Popen(
            ["ntfs-3g", "-o", ",".join(["no_detach", *opts]), dev, mnt],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            text=True,
        )
    except FileNotFoundError as exc:
        errors.close()
        raise SlateError("ntfs-3g is missing from the boot environment") from exc
    proc.stderr = errors  # read back by _unmount
    deadline = time.monotonic() + 60
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SlateError(f"ntfs-3g cannot mount {dev}: {_unmount(mnt, proc)}")
        time.sleep(0.05)
    return proc


def _unmount(mnt: str, proc: subprocess.Popen[str]) -> str:
    """Unmount (when mounted) and wait for ntfs-3g to exit; returns what it said."""
    if os.path.ismount(mnt):
        subprocess.run(["umount", mnt], capture_output=True, check=False)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    said = ""
    if proc.stderr is not None:
        proc.stderr.seek(0)
        said = " ".join(proc.stderr.read().split())[:400]
        proc.stderr.close()
    return said or f"exit {proc.returncode}"


# -- at capture ---------------------------------------------------------------------------
NOT_GENERALIZED = (
    "partition {n}: this Windows was not generalized (sysprep /generalize was not run): every"
    " machine restored from it shares one machine SID, and since the August-September 2025"
    " updates Windows 11 24H2 machines that share a SID cannot authenticate to each other."
    " Run `sysprep /generalize /oobe` on the reference machine and capture again"
)


def capture_checks(path: str, log: Log) -> list[str]:
    """Before a capture reads a byte for the image: refuse a BitLocker volume (its bytes
    cannot be deduplicated or resized, and its key is sealed to the reference machine's
    TPM); return a warning for each Windows that was not generalized."""
    warnings: list[str] = []
    for part in _partitions(path):
        number, start, size = part.number, part.start, part.size
        with open(path, "rb") as f:
            f.seek(start)
            if windows.is_bitlocker(f.read(512)):
                raise DiskRefused(
                    f"partition {number} of {path} is BitLocker-encrypted: it cannot be"
                    " captured (its bytes cannot be deduplicated or resized, and its key is"
                    " sealed to this machine's TPM)",
                    hint="turn BitLocker off on the reference machine (manage-bde -off C:,"
                    " wait for decryption to finish), then capture again",
                )
        if part.fs != "ntfs":
            continue
        with attached(path, start, size, read_only=True) as dev:
            try:
                with ntfs_mounted(dev, log, f"partition {number}", read_only=True) as mnt:
                    hive = windows.find_path(mnt, windows.SYSTEM_HIVE)
                    state = windows.generalization_state(hive) if hive else None
            except SlateError as exc:
                text = f"partition {number}: could not check whether Windows is generalized"
                warnings.append(f"{text}: {exc.message}")
                log(f"capture: WARNING: {warnings[-1]}")
                continue
        if hive is None:
            continue
        if state == windows.GENERALIZED:
            log(f"capture: partition {number}: Windows, generalized by sysprep")
            continue
        warnings.append(NOT_GENERALIZED.format(n=number))
        log(f"capture: WARNING: {warnings[-1]}")
    return warnings
