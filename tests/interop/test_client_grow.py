"""A restore job with ``grow``: the image's last partition and its ext4 filesystem are
grown to the end of a larger disk; the files in it are intact."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from client_kit import MIB, Appliance, attach, detach, read_files, run_client

from tests.conftest import require_root


def _ext4_disk(path: Path, mnt: Path) -> bytes:
    with path.open("wb") as f:
        f.truncate(64 * MIB)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(path)], check=True, capture_output=True)
    data = random.Random(11).randbytes(3 * MIB)
    dev = attach(path, MIB, 63 * MIB - 64 * 1024)  # stop short of the backup GPT
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
    target = tmp_path / "big.img"
    with target.open("wb") as f:
        f.truncate(128 * MIB)
    with Appliance(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job(grow=True)
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
        assert app.job(job.id).state == "done"
        assert "ext4 filesystem now end" in proc.stderr, proc.stderr
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(target)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    part = table["partitions"][0]
    start, size = part["start"] * 512, part["size"] * 512
    assert start + size > 126 * MIB, part
    before = _blocks(source, MIB, 63 * MIB - 64 * 1024)
    after = _blocks(target, start, size)
    assert after > before * 1.9
    got = read_files(target, tmp_path / "mnt", start, size, ["keep.bin"])
    assert got["keep.bin"] == data
