"""Kept partitions in the client (bootimage.client.keep), on sparse files with real
partition tables written by sgdisk: which layouts are kept, refused or restored whole,
and which chunks the write skips or writes around."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.errors import DiskRefused
from appliance.formats import partitions
from appliance.formats.chunkio import pread_fn
from appliance.formats.manifest import UNUSED, ZERO, Chunk, Disk, Manifest
from bootimage.client import keep
from bootimage.client.target import FileTarget

MIB = 1024 * 1024
SIZE = 48 * MIB
CHUNK = 4 * MIB
LINUX, MSDATA = "L", "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
# Partition 2 from 9 MiB to 21 MiB: chunks 2 (8-12 MiB) and 5 (20-24 MiB) straddle it.
LAYOUT = [(1, 8, LINUX), (9, 12, LINUX), (21, 8, MSDATA)]  # (start MiB, size MiB, type)


def disk_file(path: Path, layout: list[tuple[int, int, str]] | None) -> Path:
    """A sparse disk file with a GPT written by sfdisk (sgdisk waits a second per call)."""
    with path.open("wb") as f:
        f.truncate(SIZE)
    if layout:
        script = "label: gpt\n" + "".join(
            f"start={a * 2048}, size={n * 2048}, type={t}\n" for a, n, t in layout
        )
        subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", str(path)], input=script,
                       text=True, check=True, capture_output=True)  # fmt: skip
    return path


def manifest(tmp_path: Path) -> Manifest:
    source = disk_file(tmp_path / "image.img", LAYOUT)
    with source.open("rb") as f:
        table = partitions.detect(pread_fn(f.fileno()), SIZE)
    chunks = tuple(Chunk("hash", f"{i:064x}") if i % 2 else ZERO for i in range(SIZE // CHUNK))
    disk = Disk(0, SIZE, table=table.kind, partitions=table.partitions, chunk_size=CHUNK,
                chunks=chunks)  # fmt: skip
    return Manifest("lab", "20261202T000000Z", "", disks=(disk,))


def test_a_matching_partition_is_kept_and_its_chunks_skipped(tmp_path: Path) -> None:
    m = manifest(tmp_path)
    said: list[str] = []
    target = FileTarget(str(disk_file(tmp_path / "disk.img", LAYOUT)))
    try:
        plan = keep.check(m, target, [2], said.append)
    finally:
        target.close()
    assert plan.ranges == ((9 * MIB, 21 * MIB),)
    assert plan.edges == (2, 5)
    masked = keep.mask(m, plan).disks[0].chunks
    # Chunks 2..5 touch partition 2: none is written by the plain write.
    assert [i for i, c in enumerate(masked) if c == UNUSED] == [2, 3, 4, 5]
    assert masked[:2] == m.disks[0].chunks[:2] and masked[6:] == m.disks[0].chunks[6:]
    assert plan.outside(8 * MIB, CHUNK) == [(8 * MIB, 9 * MIB)]
    assert plan.outside(20 * MIB, CHUNK) == [(21 * MIB, 24 * MIB)]
    assert plan.outside(12 * MIB, CHUNK) == []
    assert any("partition 2" in s and "left as it is" in s for s in said)


def test_a_new_disk_gets_the_whole_image(tmp_path: Path) -> None:
    said: list[str] = []
    target = FileTarget(str(disk_file(tmp_path / "disk.img", None)))
    try:
        plan = keep.check(manifest(tmp_path), target, [2], said.append)
    finally:
        target.close()
    assert plan == keep.Plan()
    assert "no partition table" in said[0]


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ([(1, 8, LINUX), (9, 16, LINUX)], "differs: size"),
        ([(1, 12, LINUX), (13, 12, LINUX)], "differs: start"),
        ([(1, 8, LINUX), (9, 12, MSDATA)], "differs: type"),
        ([(1, 8, LINUX)], "is not in the disk's partition table"),
    ],
    ids=["size", "start", "type", "absent"],
)
def test_another_layout_is_refused_naming_the_difference(
    tmp_path: Path, layout: list[tuple[int, int, str]], says: str
) -> None:
    target = FileTarget(str(disk_file(tmp_path / "disk.img", layout)))
    try:
        with pytest.raises(DiskRefused) as exc:
            keep.check(manifest(tmp_path), target, [2], print)
    finally:
        target.close()
    assert f"kept partition 2 {says}" in exc.value.message
    assert "nothing was written" in exc.value.message
    assert "slate keep rm" in (exc.value.hint or "")


def test_a_rule_for_a_partition_the_image_lacks_is_refused(tmp_path: Path) -> None:
    target = FileTarget(str(disk_file(tmp_path / "disk.img", LAYOUT)))
    try:
        with pytest.raises(DiskRefused, match="has no partition 7"):
            keep.check(manifest(tmp_path), target, [7], print)
    finally:
        target.close()
