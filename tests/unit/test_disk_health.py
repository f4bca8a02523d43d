"""Disk health before writing: smartctl's JSON (the shapes smartmontools 7.3 documents and
prints, and output captured in QEMU by tests/lab/test_machine_facts.py) → the client's
record (bootimage.client.health) → the appliance's verdict (appliance.machines.diskhealth)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.machines import diskhealth
from bootimage.client.health import health_record, read_health

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "smart"


def record(name: str, path: str = "/dev/sda") -> dict:
    return health_record(path, json.loads((GOLDEN / name).read_text())).to_dict()


def verdict(name: str, **limits: int) -> diskhealth.Verdict:
    return diskhealth.judge(record(name), **limits)


def test_a_failing_ata_disk_is_refused_with_its_facts():
    rec = record("ata-failing.json")
    assert rec["kind"] == "ata" and rec["passed"] is False
    assert (rec["reallocated"], rec["pending"], rec["uncorrectable"]) == (3912, 16, 16)
    assert rec["failing_attributes"] == ["Reallocated_Sector_Ct"]
    assert rec["serial"] == "Z1D5XK3M"
    v = verdict("ata-failing.json")
    assert v.status == "refused"
    assert v.reasons == (
        "SMART overall health check FAILED",
        "failing now: Reallocated_Sector_Ct",
        "3912 reallocated sectors (more than 50)",
        "16 pending sectors (more than 10)",
        "16 offline-uncorrectable sectors (more than 10)",
    )
    reason = diskhealth.refusal([v])
    assert reason is not None and reason.startswith("disk refused for its health")
    assert "/dev/sda: SMART overall health check FAILED" in reason
    assert "ST1000DM003-1CH162" in v.line() and "FAILED" in v.line()


def test_a_passing_disk_over_the_reallocated_limit_is_refused_and_the_limit_is_a_setting():
    assert verdict("ata-worn.json").reasons == ("120 reallocated sectors (more than 50)",)
    assert verdict("ata-worn.json", max_reallocated=200).status == "ok"
    # pending 2: over a limit of 1, not over the default 10
    assert verdict("ata-worn.json", max_reallocated=200, max_pending=1).reasons == (
        "2 pending sectors (more than 1)",
    )


def test_nvme_health_log():
    ok = record("nvme-ok.json", "/dev/nvme0n1")
    assert ok["kind"] == "nvme" and ok["passed"] is True
    assert (ok["media_errors"], ok["critical_warning"], ok["percentage_used"]) == (0, 0, 3)
    assert diskhealth.judge(ok).status == "ok"
    bad = diskhealth.judge(record("nvme-spare-low.json", "/dev/nvme0n1"))
    assert bad.status == "refused"
    assert bad.reasons == (
        "SMART overall health check FAILED",
        "NVMe critical warning 0x01",
        "14 NVMe media errors (more than 10)",
    )


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("virtio-no-smart.json", "/dev/vda: Unable to detect device type"),
        ("usb-bridge-unsupported.json", "SMART is not available on this device"),
    ],
)
def test_a_disk_without_smart_is_unknown_not_refused(name, note):
    rec = record(name)
    assert (rec["kind"], rec["passed"], rec["note"]) == ("none", None, note)
    v = diskhealth.judge(rec)
    assert v.status == "unknown" and v.reasons == ()
    assert diskhealth.refusal([v]) is None
    assert "unknown, no SMART answer" in v.line()


def test_one_refused_disk_refuses_the_job_whatever_the_others_say():
    verdicts = diskhealth.judge_all(
        [record("virtio-no-smart.json", "/dev/vda"), record("ata-failing.json")],
        max_reallocated=50,
        max_pending=10,
    )
    assert [v.status for v in verdicts] == ["unknown", "refused"]
    reason = diskhealth.refusal(verdicts)
    assert reason is not None and "/dev/vda" not in reason and "/dev/sda" in reason


def test_a_record_with_nonsense_is_unknown_or_judged_on_what_is_there():
    assert diskhealth.judge({"kind": "ata"}).status == "unknown"  # no passed: unknown
    assert diskhealth.judge({"kind": "weird", "passed": False}).status == "unknown"
    v = diskhealth.judge({"kind": "ata", "passed": True, "reallocated": "lots"})
    assert v.status == "ok"  # a count that is not a number is not counted


def test_a_regular_file_target_is_unknown_without_running_smartctl(tmp_path):
    f = tmp_path / "disk.img"
    f.write_bytes(b"")
    h = read_health(str(f))
    assert (h.kind, h.passed, h.note) == ("none", None, "not a block device")


QEMU = sorted(GOLDEN.glob("qemu-*.json"))


@pytest.mark.parametrize("path", QEMU, ids=[p.stem for p in QEMU])
def test_output_captured_in_qemu(path):
    """QEMU's ide-hd answers SMART (passed, no reallocated sectors), its NVMe controller
    has a health log, virtio has no SMART: as read in the lab (UPDATE_GOLDEN=1 there)."""
    data = json.loads(path.read_text())
    rec = health_record("/dev/x", data).to_dict()
    expected = {"qemu-ide-hd": "ok", "qemu-nvme": "ok", "qemu-virtio": "unknown"}[path.stem]
    assert diskhealth.judge(rec).status == expected, rec
