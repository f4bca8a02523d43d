"""`slate image` with real block devices (loop devices, root): import from a 4 KiB-
sector disk with a GPT, export onto a used disk (stale bytes where the image has
zeros must become zeros), refuse a too small disk."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root

MIB = 1024 * 1024


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[list[str]]:
    require_root()
    made: list[str] = []

    def attach(name: str, mib: int, fill: bytes = b"\0", sector: int = 512) -> str:
        backing = tmp_path / name
        backing.write_bytes(fill * (mib * MIB))
        dev = subprocess.run(["losetup", "--find", "--show", "-b", str(sector), str(backing)],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        made.append(dev)
        return dev

    yield attach  # type: ignore[misc]
    for dev in made:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_block_device_import_export(slate, tmp_path, loops):
    src = loops("src", 40, sector=4096)
    subprocess.run(["sgdisk", "-n1:256:+8M", "-t1:ef00", "-c1:ESP", "-n2:0:0", "-t2:8300",
                    src], check=True, capture_output=True)  # fmt: skip
    with open(src, "r+b") as fh:  # some data in partition 2
        fh.seek(20 * MIB)
        fh.write(b"slate block device " * 100_000)
    version = slate("image", "import", src, "--name", "blk", check=True).stdout.strip()
    info = json.loads(slate("image", "show", f"blk@{version}", "--json", check=True).stdout)
    (d,) = info["disks"]
    assert (d["logical_sector_size"], d["table"]) == (4096, "gpt")
    assert [(p["start"], p["name"]) for p in d["partitions"]] == [
        (256 * 4096, "ESP"),
        ((256 + 2048) * 4096, ""),
    ]

    target = loops("dst", 48, fill=b"\xa5")  # a used disk: nothing reads as zero
    slate("image", "export", "blk", target, check=True)
    with open(src, "rb") as a, open(target, "rb") as b:
        assert a.read() == b.read(40 * MIB)

    small = loops("small", 16)
    proc = slate("image", "export", "blk", small)
    assert proc.returncode == 1 and "will not fit" in proc.stderr
