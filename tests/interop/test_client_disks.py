"""Disk safety with real block devices (loop devices): refused before a byte is
written — too small, other sector size, mounted — and a good block device restored,
with the GPT backup header moved to the end of a larger disk."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_kit import MIB, ServedHome, attach, detach, make_disk, run_client

from tests.conftest import require_root


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ServedHome]:
    require_root()
    source = tmp_path / "master.img"
    make_disk(source, 32 * MIB)
    with ServedHome(tmp_path / "home") as appliance:
        appliance.import_disk(source)
        yield appliance


def _digest(path: Path | str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _refused(app: ServedHome, disk: Path | str, words: str) -> None:
    job, token = app.restore_job()
    before = _digest(disk)
    proc = run_client(app.url, job, token, disk)
    assert proc.returncode == 1, proc.stderr
    ended = app.job(job.id)
    assert ended.state == "failed"
    assert words in ended.reason, ended.reason
    assert _digest(disk) == before, "the refused disk was written to"


def test_too_small_file_is_refused(app: ServedHome, tmp_path: Path) -> None:
    small = tmp_path / "small.img"
    small.write_bytes(b"keep me" * 1000)
    small.open("r+b").truncate(16 * MIB)
    _refused(app, small, "is smaller than lab@")


def test_4k_sector_disk_is_refused_for_a_512_byte_image(app: ServedHome, tmp_path: Path) -> None:
    backing = tmp_path / "4kn.img"
    backing.open("wb").truncate(64 * MIB)
    dev = attach(backing, sector=4096)
    try:
        _refused(app, dev, "4096-byte sectors")
    finally:
        detach(dev)


def test_mounted_disk_is_refused(app: ServedHome, tmp_path: Path) -> None:
    backing = tmp_path / "mounted.img"
    backing.open("wb").truncate(64 * MIB)
    dev = attach(backing)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        subprocess.run(["mkfs.ext4", "-q", dev], check=True)
        # Read-only: a read-write ext4 goes on writing by itself (lazy inode table
        # init, journal), which would hide whether the client wrote.  Mounted all the same.
        subprocess.run(["mount", "-o", "ro", dev, str(mnt)], check=True)
        try:
            _refused(app, dev, "mounted")
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(dev)


def test_block_device_restore_moves_gpt_backup_to_the_end(app: ServedHome, tmp_path: Path) -> None:
    backing = tmp_path / "disk.img"
    backing.open("wb").truncate(48 * MIB)  # larger than the 32 MiB image
    dev = attach(backing)
    try:
        job, token = app.restore_job()
        proc = run_client(app.url, job, token, dev)
        assert proc.returncode == 0, proc.stderr
        assert app.job(job.id).state == "done"
        assert "GPT backup header moved to the end" in proc.stderr
    finally:
        detach(dev)
    check = subprocess.run(["sgdisk", "-v", str(backing)], capture_output=True, text=True)
    assert "No problems found" in check.stdout, check.stdout
    source = app.home.parent / "master.img"
    with source.open("rb") as a, backing.open("rb") as b:  # the tables differ: sizes changed
        a.seek(MIB)
        b.seek(MIB)
        assert a.read(30 * MIB) == b.read(30 * MIB)
