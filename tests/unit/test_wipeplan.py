"""The wipe's pure core (bootimage.client.wipeplan, issue 28 part 2): method choice,
the tool outputs it reads, the read-back plan, the erasure report.

The golden outputs in tests/golden/wipe/ (this host has no ATA or NVMe disk; its
``hdparm -I`` answers "Operation not permitted" on its virtio disk):

* ``hdparm-ssd-{not-frozen,frozen,no-security}.txt``: ``hdparm -I`` of a real SATA SSD
  ("7 PIN  SATA FDM", 31 GB) as captured in OpenStack ironic-python-agent's test samples
  (HDPARM_INFO_TEMPLATE, ironic_python_agent/tests/unit/samples/hardware_samples.py),
  whose Security lines that project fills per case; the three files fill them the way
  hdparm 9.x prints them ("\\tnot\\tfrozen" / "\\t\\tfrozen", "\\tnot\\tsupported").
* ``hdparm-840pro-locked.txt``: the Security section of a Samsung SSD 840 PRO locked by
  a BIOS password, as posted on superuser.com (question 1056437), hdparm's tabs restored.
* ``nvme-sn730-crypto.json``: ``nvme id-ctrl -o json`` of a WDC PC SN730 256 GB
  (NVMe 1.3, SANICAP 0x60000003: crypto and block erase; FNA 0x4: format crypto erase),
  ironic-python-agent's NVME_CLI_INFO_TEMPLATE_CRYPTO_SUPPORTED.
* ``nvme-phison-no-sanitize.json``: a Phison-controller "PCIe SSD" 256 GB (VID 0x1987,
  firmware ECFM22.6; OACS 0x17, SANICAP 0, FNA 0) from a published plain-text
  ``nvme id-ctrl`` on a Proxmox host, transcribed to nvme-cli's JSON keys (hex as
  numbers; the power-state list left out).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from appliance.errors import DiskRefused, SlateError
from bootimage.client.wipeplan import (
    AtaSecurity,
    NvmeCaps,
    WipeFacts,
    check_zeroed,
    controller_of,
    erasure_report,
    facts_from,
    fd_reader,
    parse_hdparm_security,
    parse_nvme_id_ctrl,
    plan,
    verify_plan,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "wipe"
GIB = 1 << 30
MIB = 1 << 20

SATA = WipeFacts("/dev/sda", "ata", "7 PIN  SATA FDM", "20131210000000000023", 31016853504)
NVME = WipeFacts("/dev/nvme0n1", "nvme", "WDC PC SN730", "1951B3444502", 256060514304)
VIRTIO = WipeFacts("/dev/vda", "virtio", "", "", 64 * GIB)


def hdparm(name: str) -> AtaSecurity:
    return parse_hdparm_security((GOLDEN / name).read_text())


def id_ctrl(name: str) -> NvmeCaps:
    return parse_nvme_id_ctrl((GOLDEN / name).read_text())


# --- parsers ---------------------------------------------------------------


def test_hdparm_not_frozen_ssd():
    assert hdparm("hdparm-ssd-not-frozen.txt") == AtaSecurity(
        supported=True,
        enabled=False,
        locked=False,
        frozen=False,
        count_expired=False,
        enhanced_erase=True,
        erase_seconds=1440,
        enhanced_erase_seconds=1440,
    )


def test_hdparm_frozen_ssd():
    sec = hdparm("hdparm-ssd-frozen.txt")
    assert (sec.supported, sec.frozen, sec.enhanced_erase) == (True, True, True)


def test_hdparm_security_not_supported():
    sec = hdparm("hdparm-ssd-no-security.txt")
    assert (sec.supported, sec.frozen, sec.enhanced_erase) == (False, False, False)


def test_hdparm_locked_drive_and_no_security_section():
    assert hdparm("hdparm-840pro-locked.txt") == AtaSecurity(
        supported=True, enabled=True, locked=True, frozen=False
    )
    assert parse_hdparm_security("/dev/vda: Operation not permitted\n") == AtaSecurity()
    long = "Security: \n\t\tsupported\n\tmore than 508min for SECURITY ERASE UNIT.\n"
    assert parse_hdparm_security(long).erase_seconds == 30480


def test_nvme_with_sanitize_and_format_crypto_erase():
    assert id_ctrl("nvme-sn730-crypto.json") == NvmeCaps(
        model="WDC PC SN730 SDBQNTY-256G-1001",
        serial="1951B3444502",
        format_nvm=True,
        sanitize_crypto=True,
        sanitize_block=True,
        sanitize_overwrite=False,
        format_crypto=True,
        format_all_namespaces=False,
        namespaces=1,
    )


def test_nvme_without_sanitize():
    caps = id_ctrl("nvme-phison-no-sanitize.json")
    assert (caps.model, caps.serial) == ("PCIe SSD", "20051425602290")
    assert (caps.format_nvm, caps.sanitize_crypto, caps.sanitize_block) == (True, False, False)
    assert caps.format_crypto is False


def test_nvme_garbage_is_a_slate_error():
    with pytest.raises(SlateError, match="no JSON"):
        parse_nvme_id_ctrl("Error: No such device")
    with pytest.raises(SlateError, match="not an object"):
        parse_nvme_id_ctrl("[1]")


# --- the plan --------------------------------------------------------------


def test_auto_on_an_nvme_with_crypto_sanitize_is_crypto_erase():
    p = plan(NVME, nvme=id_ctrl("nvme-sn730-crypto.json"))
    assert (p.method, p.nist) == ("crypto-erase", "Purge")
    assert p.commands == (("nvme", "sanitize", "/dev/nvme0", "--sanact=4"),)
    assert p.why == ("crypto-erase: NVMe Sanitize, Crypto Erase",)
    assert p.estimated_seconds is None


def test_format_crypto_erase_when_sanitize_has_no_crypto():
    caps = dataclasses.replace(id_ctrl("nvme-sn730-crypto.json"), sanitize_crypto=False)
    p = plan(NVME, nvme=caps)
    assert p.commands == (("nvme", "format", "/dev/nvme0n1", "--ses=2", "--force"),)
    assert p.command_lines() == ["nvme format /dev/nvme0n1 --ses=2 --force"]


def test_nvme_without_sanitize_gets_format_user_data_erase():
    p = plan(NVME, nvme=id_ctrl("nvme-phison-no-sanitize.json"))
    assert (p.method, p.nist) == ("secure-erase", "Purge")
    assert p.commands == (("nvme", "format", "/dev/nvme0n1", "--ses=1", "--force"),)
    assert p.why == (
        "crypto-erase not possible: the NVMe controller supports neither Sanitize Crypto Erase"
        " nor Format crypto erase",
        "secure-erase: NVMe Format, Secure Erase Settings 1 (user data erase)",
    )


def test_forced_secure_erase_on_a_crypto_nvme_uses_sanitize_block_erase():
    p = plan(NVME, nvme=id_ctrl("nvme-sn730-crypto.json"), method="secure-erase")
    assert p.commands == (("nvme", "sanitize", "/dev/nvme0", "--sanact=2"),)


def test_sanitize_on_a_many_namespace_controller_says_so():
    caps = dataclasses.replace(id_ctrl("nvme-sn730-crypto.json"), namespaces=32)
    assert plan(NVME, nvme=caps).why[1] == (
        "Sanitize erases every namespace of the controller (it supports 32)"
    )


def test_not_frozen_ata_ssd_gets_enhanced_secure_erase():
    p = plan(SATA, ata=hdparm("hdparm-ssd-not-frozen.txt"))
    assert (p.method, p.nist, p.estimated_seconds) == ("secure-erase", "Purge", 1440)
    assert p.commands == (
        ("hdparm", "--user-master", "u", "--security-set-pass", "slate-wipe", "/dev/sda"),
        ("hdparm", "--user-master", "u", "--security-erase-enhanced", "slate-wipe", "/dev/sda"),
    )
    assert p.why == (
        "crypto-erase not possible: crypto erase needs an NVMe disk: the disk is not NVMe (ata)",
        "secure-erase: ATA Enhanced Security Erase",
    )


def test_ata_without_enhanced_erase_uses_the_normal_one():
    sec = dataclasses.replace(hdparm("hdparm-ssd-not-frozen.txt"), enhanced_erase=False)
    p = plan(SATA, ata=sec)
    assert p.commands[1] == (
        "hdparm",
        "--user-master",
        "u",
        "--security-erase",
        "slate-wipe",
        "/dev/sda",
    )


def test_frozen_ata_refuses_forced_secure_erase_with_the_fix():
    with pytest.raises(DiskRefused) as err:
        plan(SATA, ata=hdparm("hdparm-ssd-frozen.txt"), method="secure-erase")
    assert str(err.value) == (
        "/dev/sda cannot be wiped by secure-erase:"
        " the ATA drive's security is frozen (the firmware froze it at boot)"
    )
    assert err.value.hint == (
        "suspend and resume the machine (rtcwake -m mem -s 5), then run the wipe again"
    )


def test_frozen_ata_auto_falls_back_and_says_why():
    frozen = dataclasses.replace(SATA, discard_max_bytes=2 * GIB, write_zeroes_max_bytes=0)
    p = plan(frozen, ata=hdparm("hdparm-ssd-frozen.txt"))
    assert (p.method, p.nist, p.commands) == ("overwrite", "Clear", ())
    assert p.why == (
        "crypto-erase not possible: crypto erase needs an NVMe disk: the disk is not NVMe (ata)",
        "secure-erase not possible: the ATA drive's security is frozen (the firmware froze it"
        " at boot) (to use it: suspend and resume the machine (rtcwake -m mem -s 5),"
        " then run the wipe again)",
        "discard not possible: the disk discards but does not promise zeroes afterwards",
        "overwrite: one pass of zeroes over every byte",
    )


def test_forced_method_with_fallback_records_the_refusal():
    p = plan(
        dataclasses.replace(SATA, write_zeroes_max_bytes=4096),
        ata=hdparm("hdparm-ssd-no-security.txt"),
        method="secure-erase",
        fallback=True,
    )
    assert p.method == "discard"
    assert p.commands == (("blkdiscard", "-z", "-f", "/dev/sda"),)
    assert p.why == (
        "secure-erase not possible: the drive does not support the ATA Security feature set",
        "discard: blkdiscard -z (the device zeroes ranges itself: write zeroes)",
    )


def test_locked_drive_and_missing_hdparm_answer():
    with pytest.raises(DiskRefused, match="password set and is locked") as err:
        plan(SATA, ata=hdparm("hdparm-840pro-locked.txt"), method="secure-erase")
    assert err.value.hint is not None and "--security-disable" in err.value.hint
    with pytest.raises(DiskRefused, match="does not support the ATA Security"):
        plan(SATA, method="secure-erase")


def test_discard_rules():
    legacy = dataclasses.replace(VIRTIO, discard_max_bytes=GIB, discard_zeroes_data=True)
    assert plan(legacy).commands == (("blkdiscard", "-f", "/dev/vda"),)
    assert plan(legacy).why[-1] == "discard: blkdiscard (discarded blocks read back as zeroes)"
    assert plan(legacy).nist == "Clear"
    with pytest.raises(DiskRefused, match="neither discard nor write zeroes"):
        plan(VIRTIO, method="discard")
    assert plan(VIRTIO, method="discard", fallback=True).method == "overwrite"


def test_virtio_and_usb_cannot_secure_erase():
    with pytest.raises(DiskRefused, match="secure erase needs an ATA or NVMe disk, not usb"):
        usb = dataclasses.replace(SATA, transport="usb", removable=True)
        plan(
            usb,
            ata=hdparm("hdparm-ssd-not-frozen.txt"),
            method="secure-erase",
            removable_named=True,
        )
    with pytest.raises(DiskRefused, match="crypto erase needs an NVMe disk: the disk is not NVMe"):
        plan(VIRTIO, method="crypto-erase")
    with pytest.raises(DiskRefused, match="nvme id-ctrl gave no answer"):
        plan(NVME, method="crypto-erase")


def test_removable_read_only_and_unknown_method():
    stick = dataclasses.replace(VIRTIO, transport="usb", removable=True)
    with pytest.raises(DiskRefused, match="removable media: it is wiped only when named"):
        plan(stick)
    assert plan(stick, removable_named=True).method == "overwrite"
    with pytest.raises(DiskRefused, match="read-only"):
        plan(dataclasses.replace(VIRTIO, read_only=True))
    with pytest.raises(SlateError, match="unknown wipe method 'shred'") as err:
        plan(VIRTIO, method="shred")
    assert err.value.hint == ("choose one of: auto, crypto-erase, secure-erase, discard, overwrite")


def test_controller_of_and_facts_from_sysfs():
    assert controller_of("/dev/nvme0n1") == "/dev/nvme0"
    assert controller_of("/dev/nvme12n3") == "/dev/nvme12"
    assert controller_of("/dev/sda") == "/dev/sda"

    @dataclasses.dataclass
    class Disk:  # the fields of bootimage.client.disks.DiskInfo it reads
        path: str = "/dev/vdb"
        transport: str = "virtio"
        model: str | None = None
        serial: str | None = "abc"
        size: int = GIB
        logical_sector_size: int = 512
        physical_sector_size: int = 4096
        rotational: bool = False
        removable: bool = False
        read_only: bool = False

    attrs = {
        "queue/discard_granularity": "512",
        "queue/discard_max_bytes": "2147483136",
        "queue/discard_zeroes_data": "0",
        "queue/write_zeroes_max_bytes": "2147483136\n",
    }
    assert facts_from(Disk(), attrs) == WipeFacts(
        path="/dev/vdb",
        transport="virtio",
        model="",
        serial="abc",
        size=GIB,
        logical_sector_size=512,
        physical_sector_size=4096,
        discard_granularity=512,
        discard_max_bytes=2147483136,
        discard_zeroes_data=False,
        write_zeroes_max_bytes=2147483136,
    )


# --- verify ----------------------------------------------------------------


def test_sampled_verify_plan_is_seeded_and_covers_both_ends():
    size = 3 * GIB + 5 * MIB
    a = verify_plan(size, seed=7)
    assert a == verify_plan(size, seed=7)
    assert a != verify_plan(size, seed=8)
    assert a.ranges[0] == (0, MIB)
    assert a.ranges[-1][0] + a.ranges[-1][1] == size
    assert a.full is False
    # 4 regions (the last one 5 MiB), 4 samples each, plus both ends, some may merge
    assert 4 * MIB < a.bytes_checked <= 18 * MIB
    for region in range(4):
        lo, hi = region * GIB, min(size, (region + 1) * GIB)
        assert any(lo <= off < hi for off, _ in a.ranges), region
    offsets = [off for off, _ in a.ranges]
    assert offsets == sorted(offsets)
    for (o1, n1), (o2, _) in zip(a.ranges, a.ranges[1:], strict=False):
        assert o1 + n1 < o2  # merged: no overlap, no touching
    assert all(off % 4096 == 0 for off, _ in a.ranges[:-1])


def test_small_disk_and_full_verify():
    assert verify_plan(100_000, sample_bytes=MIB).ranges == ((0, 100_000),)
    full = verify_plan(10 * MIB + 1, full=True, sample_bytes=4 * MIB)
    assert full.ranges == ((0, 4 * MIB), (4 * MIB, 4 * MIB), (8 * MIB, 2 * MIB + 1))
    assert full.bytes_checked == 10 * MIB + 1
    with pytest.raises(SlateError):
        verify_plan(0)


def test_check_zeroed_on_a_sparse_file_and_a_stray_byte(tmp_path):
    path = tmp_path / "disk.img"
    size = 2 * GIB + 3 * MIB
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: reads back zero, costs no disk space
    fd = os.open(path, os.O_RDWR)
    try:
        read = fd_reader(fd)
        sampled = verify_plan(size, seed=1)
        assert check_zeroed(read, sampled) is None
        stray = size - 100  # inside the last sample, which is always read
        os.pwrite(fd, b"\x01", stray)
        assert check_zeroed(read, sampled) == stray
        first = sampled.ranges[1][0] + 12345  # inside a seeded sample
        os.pwrite(fd, b"\xff", first)
        assert check_zeroed(read, sampled) == first
        # a stray byte between the samples is found only by a full read-back
        gap = sampled.ranges[1][0] + sampled.ranges[1][1] + 10
        os.pwrite(fd, b"\x00", first)
        os.pwrite(fd, b"\x00", stray)
        os.pwrite(fd, b"\x07", gap)
        assert check_zeroed(read, sampled) is None
        small = 64 * MIB
        os.ftruncate(fd, small)
        os.pwrite(fd, b"\x07", 40 * MIB + 3)
        assert check_zeroed(read, verify_plan(small, full=True)) == 40 * MIB + 3
    finally:
        os.close(fd)


def test_a_short_read_fails_loudly():
    with pytest.raises(SlateError, match="read-back stopped at byte 4096: 4096 of 8192"):
        check_zeroed(lambda off, n: bytes(min(n, 4096 - off)), verify_plan(8192))


# --- report ----------------------------------------------------------------


def test_erasure_report_shape():
    p = plan(NVME, nvme=id_ctrl("nvme-sn730-crypto.json"))
    started = datetime(2026, 12, 7, 21, 30, 0, tzinfo=timezone(timedelta(hours=1)))
    v = verify_plan(NVME.size, seed=3)
    report = erasure_report(
        NVME,
        p,
        job_id="j-42",
        requested_by="tom",
        started=started,
        finished=datetime(2026, 12, 7, 20, 31, 5, tzinfo=UTC),
        verify=v,
    )
    assert list(report) == [
        "job_id",
        "requested_by",
        "disk",
        "method",
        "nist_category",
        "commands",
        "why",
        "started_utc",
        "finished_utc",
        "verify",
        "result",
        "error",
        "bytes_done",
    ]
    assert report == {
        "job_id": "j-42",
        "requested_by": "tom",
        "disk": {
            "model": "WDC PC SN730",
            "serial": "1951B3444502",
            "size_bytes": 256060514304,
            "transport": "nvme",
            "path": "/dev/nvme0n1",
        },
        "method": "crypto-erase",
        "nist_category": "Purge",
        "commands": ["nvme sanitize /dev/nvme0 --sanact=4"],
        "why": ["crypto-erase: NVMe Sanitize, Crypto Erase"],
        "started_utc": "2026-12-07T20:30:00Z",
        "finished_utc": "2026-12-07T20:31:05Z",
        "verify": {
            "mode": "sample",
            "result": "passed",
            "bytes_checked": v.bytes_checked,
            "first_nonzero_offset": None,
        },
        "result": "erased",
        "error": None,
        "bytes_done": None,
    }
    assert json.loads(json.dumps(report)) == report


def test_erasure_report_of_a_failure_and_of_a_dirty_read_back():
    p = plan(VIRTIO)
    t = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    gone = erasure_report(
        VIRTIO,
        p,
        job_id="j-1",
        requested_by="seat:tom",
        started=t,
        finished=t,
        verify=None,
        error="the disk disappeared",
        bytes_done=7 * GIB,
    )
    assert (gone["result"], gone["error"], gone["bytes_done"]) == (
        "failed",
        "the disk disappeared",
        7 * GIB,
    )
    assert gone["verify"] == {
        "mode": None,
        "result": "not run",
        "bytes_checked": None,
        "first_nonzero_offset": None,
    }
    dirty = erasure_report(
        VIRTIO,
        p,
        job_id="j-2",
        requested_by="tom",
        started=t,
        finished=None,
        verify=verify_plan(VIRTIO.size, full=True),
        first_nonzero=512,
    )
    assert (dirty["result"], dirty["finished_utc"]) == ("failed", None)
    assert dirty["verify"]["mode"] == "full"
    assert dirty["verify"]["result"] == "failed"
    assert dirty["verify"]["first_nonzero_offset"] == 512
    with pytest.raises(SlateError, match="time zone"):
        erasure_report(
            VIRTIO,
            p,
            job_id="j",
            requested_by="t",
            started=datetime(2026, 1, 1),
            finished=None,
            verify=None,
        )
