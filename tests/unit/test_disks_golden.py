"""Disk records from real udev data captured in a QEMU machine running the boot
environment (tests/golden/udev/qemu-disks.json; regenerate with UPDATE_GOLDEN=1 and
tests/lab/test_bootimage_boot.py)."""

from __future__ import annotations

import json
from pathlib import Path

from bootimage.client.disks import DiskInfo, disk_record

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "udev" / "qemu-disks.json"
MIB = 1024 * 1024


def golden_disks() -> dict[str, DiskInfo]:
    facts = json.loads(GOLDEN.read_text())["facts"]
    records = [disk_record(f["properties"], f["attributes"]) for f in facts]
    return {r.serial or r.name: r for r in records if r is not None}


def test_every_captured_disk_becomes_a_record() -> None:
    disks = golden_disks()
    assert set(disks) == {
        "VIRTIO-SER1",
        "SATA-SER2",
        "NVME-SER3",
        "USB-SER4",
        "SCSI-SER5",
        "VIRTIO-4KN",
        "NVME-4KN",
    }
    # The USB stick is twice the others: the boot that captured them also refuses a
    # 96 MiB restore on it for being removable, not for being too small.
    assert {s: d.size // MIB for s, d in disks.items() if d.size != 64 * MIB} == {"USB-SER4": 128}


def test_transports_identity_and_flags() -> None:
    d = golden_disks()
    assert d["VIRTIO-SER1"].transport == "virtio" and d["VIRTIO-SER1"].path == "/dev/vda"
    assert d["SATA-SER2"].transport == "ata"
    assert d["SATA-SER2"].model == "Slate SATA Disk"
    assert d["NVME-SER3"].transport == "nvme"
    assert d["USB-SER4"].transport == "usb" and d["USB-SER4"].removable
    assert d["SCSI-SER5"].wwn == "0x5000c50015ea71ac"  # serial is the unit serial, not WWN
    assert d["VIRTIO-4KN"].logical_sector_size == 4096
    assert d["VIRTIO-4KN"].physical_sector_size == 4096
    assert d["NVME-4KN"].transport == "nvme" and d["NVME-4KN"].logical_sector_size == 4096
    assert d["NVME-4KN"].by_path == "/dev/disk/by-path/pci-0000:00:0a.0-nvme-1"
    fixed = [k for k, v in d.items() if not v.removable]
    assert sorted(fixed) == [
        "NVME-4KN",
        "NVME-SER3",
        "SATA-SER2",
        "SCSI-SER5",
        "VIRTIO-4KN",
        "VIRTIO-SER1",
    ]
    assert d["SATA-SER2"].by_path == "/dev/disk/by-path/pci-0000:00:05.0-ata-1.0"


def test_ram_loop_and_partitions_are_not_candidates() -> None:
    base = {"DEVTYPE": "disk", "SUBSYSTEM": "block"}
    attrs = {"size": "2048", "queue/logical_block_size": "512"}
    for name in ("ram0", "zram0", "loop3", "sr0", "dm-0", "md127"):
        assert disk_record({**base, "DEVNAME": f"/dev/{name}"}, attrs) is None
    assert disk_record({"DEVTYPE": "partition", "DEVNAME": "/dev/sda1"}, attrs) is None
    assert disk_record({**base, "DEVNAME": "/dev/sdz"}, {"size": "0"}) is None
