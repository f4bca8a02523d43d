"""Partition tables and filesystem magic, on tables written by sfdisk/sgdisk and
filesystems made by mkfs (pure-Python parsing, no tools at read time)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appliance.errors import IntegrityError
from appliance.formats import partitions
from appliance.formats.chunkio import pread_fn

MIB = 1024 * 1024


def _detect(path: Path, sector_size: int = 512) -> partitions.Table:
    fd = os.open(path, os.O_RDONLY)
    try:
        return partitions.detect(pread_fn(fd), path.stat().st_size, sector_size)
    finally:
        os.close(fd)


def test_mbr_with_vfat_and_swap(tmp_path):
    disk = tmp_path / "mbr.img"
    subprocess.run(["truncate", "-s", "40M", str(disk)], check=True)
    layout = "label: dos\nstart=2048, size=16384, type=c\nstart=18432, size=20480, type=82\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=layout, text=True, check=True)
    subprocess.run(["mkfs.vfat", "--offset", "2048", str(disk), "8192"], check=True,
                   capture_output=True)  # fmt: skip
    part2 = tmp_path / "p2.img"
    subprocess.run(["truncate", "-s", "10M", str(part2)], check=True)
    subprocess.run(["mkswap", str(part2)], check=True, capture_output=True)
    with open(disk, "r+b") as fh:
        fh.seek(18432 * 512)
        fh.write(part2.read_bytes())
    table = _detect(disk)
    assert table.kind == "mbr"
    got = [(p.number, p.start, p.size, p.type, p.fs) for p in table.partitions]
    assert got == [(1, MIB, 8 * MIB, "0x0c", "vfat"), (2, 9 * MIB, 10 * MIB, "0x82", "swap")]
    assert partitions.type_name("0x82") == "Linux swap"


def test_garbage_and_blank_are_no_table(tmp_path):
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MIB))
    assert _detect(blank).kind == "none"
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x55\xaa" * (MIB // 2))
    assert _detect(junk).kind in ("none", "mbr")  # never raises


def test_mbr_logical_partitions_in_the_extended_one(tmp_path):
    disk = tmp_path / "ext.img"
    subprocess.run(["truncate", "-s", "40M", str(disk)], check=True)
    layout = (
        "label: dos\nstart=2048, size=8192, type=83\nstart=10240, size=30720, type=5\n"
        "start=12288, size=8192, type=83\nstart=22528, size=8192, type=82\n"
    )
    subprocess.run(["sfdisk", "-q", str(disk)], input=layout, text=True, check=True)
    got = [(p.number, p.start // 512, p.size // 512, p.type) for p in _detect(disk).partitions]
    assert got == [
        (1, 2048, 8192, "0x83"),
        (2, 10240, 30720, "0x05"),
        (5, 12288, 8192, "0x83"),
        (6, 22528, 8192, "0x82"),
    ]


def test_a_disk_that_cannot_be_read_is_an_error_not_no_table():
    def broken(offset: int, length: int) -> bytes:
        raise OSError(5, "Input/output error")

    with pytest.raises(IntegrityError, match="cannot read the partition table"):
        partitions.detect(broken, 1 << 30)
    assert partitions.detect(lambda o, n: b"\0" * n, 1 << 30).kind == "none"  # odd: no table


def test_capture_fails_when_the_partition_table_cannot_be_read(tmp_path):
    from bootimage.client.capture import partition_table

    class Unreadable:  # a source whose reads fail (a directory's descriptor: EISDIR)
        fd = os.open(tmp_path, os.O_RDONLY)
        size = 1 << 30

    try:
        with pytest.raises(IntegrityError):
            partition_table(Unreadable(), 512)  # type: ignore[arg-type]
    finally:
        os.close(Unreadable.fd)


def test_damaged_gpt_entries_use_the_backup_and_never_raise(tmp_path):
    # Random bytes over the primary entries (what a "5 % changed" test disk did to its
    # first chunk) made import read at a start sector past 2**63: an OverflowError
    # traceback.  Firmware checks the entries' CRC and takes the backup; so does Slate.
    disk = tmp_path / "gpt.img"
    subprocess.run(["truncate", "-s", "40M", str(disk)], check=True)
    subprocess.run(["sgdisk", "-n1:2048:+8M", "-t1:8300", "-c1:root", "-n2:0:0", str(disk)],
                   check=True, capture_output=True)  # fmt: skip
    whole = _detect(disk)
    assert whole.kind == "gpt"
    first = whole.partitions[0]
    assert (first.number, first.start, first.name, len(whole.partitions)) == (1, MIB, "root", 2)
    with open(disk, "r+b") as fh:
        fh.seek(8192)  # LBA 16: inside the primary entries (LBA 2-33)
        fh.write(os.urandom(4096))
        fh.seek(1024)  # and the first entries themselves
        fh.write(b"\xff" * 512)
    assert _detect(disk) == whole  # the backup at the disk's end
    with open(disk, "r+b") as fh:  # the backup's entries too
        fh.seek(40 * MIB - 33 * 512)
        fh.write(b"\xff" * 512)
    damaged = _detect(disk)  # no readable GPT: the protective MBR, never an error
    assert damaged.kind == "mbr"
    assert [p.type for p in damaged.partitions] == ["0xee"]
