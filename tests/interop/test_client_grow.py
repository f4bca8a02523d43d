"""A restore job with ``grow``: the image's last partition and its ext4 or NTFS
filesystem are grown to the end of a larger disk; the files in it are intact."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from client_kit import MIB, ServedHome, attach, detach, read_files, run_client

from tests.conftest import require_root

# The one partition of the 64 MiB source disks: from 1 MiB to short of the backup GPT.
PART = (MIB, 63 * MIB - 64 * 1024)


def _gpt_disk(path: Path, size: int, type_code: str) -> None:
    with path.open("wb") as f:
        f.truncate(size)
    subprocess.run(
        ["sgdisk", "-n1:2048:0", f"-t1:{type_code}", str(path)], check=True, capture_output=True
    )


def _restore_grown(tmp_path: Path, source: Path) -> tuple[Path, int, int, str]:
    """Restore ``source`` with grow onto a 128 MiB disk: (disk, start, size, client log)."""
    target = tmp_path / "big.img"
    with target.open("wb") as f:
        f.truncate(128 * MIB)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job(grow=True)
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
        assert app.job(job.id).state == "done"
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(target)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    part = table["partitions"][0]
    start, size = part["start"] * 512, part["size"] * 512
    assert start + size > 126 * MIB, part
    return target, start, size, proc.stderr


def _ext4_disk(path: Path, mnt: Path) -> bytes:
    _gpt_disk(path, 64 * MIB, "8300")
    data = random.Random(11).randbytes(3 * MIB)
    dev = attach(path, *PART)
    mnt.mkdir(exist_ok=True)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
        subprocess.run(["mount", dev, str(mnt)], check=True)
        try:
            (mnt / "keep.bin").write_bytes(data)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(dev)
    return data


def _blocks(path: Path, offset: int, size: int) -> int:
    dev = attach(path, offset, size)
    try:
        out = subprocess.run(["dumpe2fs", "-h", dev], capture_output=True, text=True).stdout
        fsck = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    finally:
        detach(dev)
    line = next(ln for ln in out.splitlines() if ln.startswith("Block count:"))
    return int(line.split(":")[1])


def test_grow_last_partition_and_ext4(tmp_path: Path) -> None:
    require_root()
    source = tmp_path / "master.img"
    data = _ext4_disk(source, tmp_path / "mnt")
    target, start, size, log = _restore_grown(tmp_path, source)
    assert "ext4 filesystem now end" in log, log
    before = _blocks(source, *PART)
    after = _blocks(target, start, size)
    assert after > before * 1.9
    got = read_files(target, tmp_path / "mnt", start, size, ["keep.bin"])
    assert got["keep.bin"] == data


def _ntfs_clusters(path: Path, offset: int, size: int) -> int:
    """The NTFS volume's size in clusters (no mount; --force: ntfsresize marks a grown
    volume for a chkdsk at its first Windows boot, as it should)."""
    dev = attach(path, offset, size)
    try:
        out = subprocess.run(
            ["ntfsinfo", "--force", "-m", dev], capture_output=True, text=True, check=True
        ).stdout
    finally:
        detach(dev)
    line = next(ln for ln in out.splitlines() if "Volume Size in Clusters" in ln)
    return int(line.split(":")[1])


def test_grow_last_partition_and_ntfs(tmp_path: Path) -> None:
    require_root()
    source = tmp_path / "master.img"
    _gpt_disk(source, 64 * MIB, "0700")
    data = random.Random(12).randbytes(3 * MIB)
    (tmp_path / "keep.bin").write_bytes(data)
    dev = attach(source, *PART)
    try:
        subprocess.run(["mkntfs", "-Q", "-F", "-L", "DATA", dev], check=True, capture_output=True)
        subprocess.run(
            ["ntfscp", dev, str(tmp_path / "keep.bin"), "keep.bin"], check=True, capture_output=True
        )
    finally:
        detach(dev)
    target, start, size, log = _restore_grown(tmp_path, source)
    assert "ntfs filesystem now end" in log, log
    assert _ntfs_clusters(target, start, size) > _ntfs_clusters(source, *PART) * 1.9
    dev = attach(target, start, size)
    try:
        got = subprocess.run(
            ["ntfscat", "--force", dev, "keep.bin"], capture_output=True, check=True
        ).stdout
        check = subprocess.run(["ntfsfix", "--no-action", dev], capture_output=True, text=True)
    finally:
        detach(dev)
    assert got == data
    assert check.returncode == 0, check.stdout + check.stderr
