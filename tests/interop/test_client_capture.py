"""Capture with the real client: partclone's used-block maps make free space
``unused``, only missing chunks are uploaded, and capture → restore round-trips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from client_kit import MIB, ServedHome, make_partitioned_disk, read_fat_file, read_files, run_client

from appliance.errors import NotFound
from appliance.store import Store


def test_capture_then_restore_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "pc.img"
    files = make_partitioned_disk(source, tmp_path / "mnt")
    with ServedHome(tmp_path / "home") as app:
        job, token = app.capture_job("captured")
        proc = run_client(app.url, job, token, source)
        assert proc.returncode == 0, proc.stderr
        ended = app.job(job.id)
        assert ended.state == "done", ended.reason
        manifest = Store(app.layout).resolve("captured")
        disk = manifest.disks[0]
        assert ended.verified_bytes == disk.size - disk.bytes_of("unused")
        assert manifest.created.endswith("Z")
        assert disk.size == 128 * MIB and disk.table == "gpt"
        assert [p.fs for p in disk.partitions] == ["ext4", "vfat", ""]
        # Free space of the ext4 and FAT filesystems was not read.
        assert disk.bytes_of("unused") >= 40 * MIB, disk.bytes_of("unused")
        assert "partition 1 (ext4)" in proc.stderr

        # A second capture of the unchanged disk uploads nothing new.
        job2, token2 = app.capture_job("captured")
        proc = run_client(app.url, job2, token2, source)
        assert proc.returncode == 0, proc.stderr
        assert "uploaded 0 new chunk(s)" in proc.stderr

        target = tmp_path / "restored.img"
        with target.open("wb") as f:
            f.truncate(128 * MIB)
        # A capture is a candidate: a technician promotes it before NAME restores it.
        with pytest.raises(NotFound):
            app.restore_job("captured")
        Store(app.layout).set_mark("captured", manifest.version, "candidate", False)
        job3, token3 = app.restore_job("captured")
        assert job3.version == manifest.version
        proc = run_client(app.url, job3, token3, target)
        assert proc.returncode == 0, proc.stderr
    mnt = tmp_path / "mnt"
    ext_files = [n for n in files if n != "fat.bin"]
    assert read_files(target, mnt, MIB, 64 * MIB, ext_files) == {n: files[n] for n in ext_files}
    assert read_fat_file(target, 65 * MIB, 16 * MIB, "fat.bin") == files["fat.bin"]
    with source.open("rb") as a, target.open("rb") as b:
        a.seek(81 * MIB)
        b.seek(81 * MIB)
        assert a.read(8 * MIB) == b.read(8 * MIB)  # the unknown partition is copied whole
    fsck = subprocess.run(["sgdisk", "-v", str(target)], capture_output=True, text=True)
    assert "No problems found" in fsck.stdout, fsck.stdout
