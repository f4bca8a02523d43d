"""Choosing the target disk, and refusing — with a message naming disks and sizes —
disks that are too small, of another sector size, removable, busy, or ambiguous.
Records come from real udev captures (tests/golden/udev/)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_disks_golden import golden_disks

from appliance.errors import DiskRefused
from bootimage.client.select import Need, choose

MIB = 1024 * 1024
NEED = Need(48 * MIB, 512, "image 'lab' disk 0")


def test_one_fixed_disk_that_fits_is_chosen() -> None:
    d = golden_disks()
    assert choose([d["SATA-SER2"], d["USB-SER4"], d["VIRTIO-4KN"]], NEED) == d["SATA-SER2"]


def test_several_fitting_disks_are_ambiguous_and_named() -> None:
    d = golden_disks()
    with pytest.raises(DiskRefused) as err:
        choose(list(d.values()), NEED)
    text = err.value.message
    assert "ambiguous" in text
    for name in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/sdb"):
        assert name in text
    assert "/dev/sdc" not in text  # the USB stick never was a candidate
    assert "serial" in (err.value.hint or "")


def test_hints_pick_by_serial_or_wwn() -> None:
    d = list(golden_disks().values())
    assert choose(d, NEED, {"serial": "NVME-SER3"}).path == "/dev/nvme0n1"
    assert choose(d, NEED, {"wwn": "0x5000C50015EA71AC"}).path == "/dev/sdb"
    with pytest.raises(DiskRefused, match="no disk matches serial=NOPE"):
        choose(d, NEED, {"serial": "NOPE"})


def test_removable_disk_is_refused_even_when_named() -> None:
    d = golden_disks()
    with pytest.raises(DiskRefused, match="removable"):
        choose(list(d.values()), NEED, {"serial": "USB-SER4"})
    assert choose(list(d.values()), NEED, {"serial": "USB-SER4", "allow_removable": True})
    assert choose(list(d.values()), NEED, {"serial": "USB-SER4", "allow_removable": "yes"})
    with pytest.raises(DiskRefused, match="removable"):
        choose(list(d.values()), NEED, {"serial": "USB-SER4", "allow_removable": "no"})


def test_too_small_and_other_sector_size_are_refused_with_sizes() -> None:
    d = golden_disks()
    big = Need(100 * MIB, 512, "image 'lab' disk 0")
    with pytest.raises(DiskRefused) as err:
        choose([d["SATA-SER2"]], big)
    assert "too small (64 MiB < 100 MiB)" in err.value.message
    with pytest.raises(DiskRefused, match="4096-byte sectors, the image has 512-byte"):
        choose([d["VIRTIO-4KN"]], NEED)
    with pytest.raises(DiskRefused, match="in use"):
        choose([d["SATA-SER2"]], NEED, busy={"sda"})


def test_size_hint_with_units() -> None:
    d = golden_disks()
    bigger = replace(d["NVME-SER3"], size=512 * 10**9, serial="BIG")
    assert choose([d["SATA-SER2"], bigger], NEED, {"size": "512G"}).serial == "BIG"
    no_table = [d["SATA-SER2"], d["VIRTIO-SER1"]]
    with pytest.raises(DiskRefused):
        choose(no_table, NEED, {"min_size": "1G"})
