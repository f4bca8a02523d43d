"""Disk health before writing: what SMART (ATA) or the NVMe health log says about a disk.

``health_record(smartctl_json)`` is a pure function of what ``smartctl --json -H -A -i``
printed (tested against smartmontools' documented output shapes and output captured in
QEMU, tests/golden/smart/); ``read_health(path)`` runs smartctl.  The record is what the
client reports to the appliance, which decides (appliance.machines.diskhealth): the threshold is
the appliance's setting, not the boot environment's.

A disk that does not answer SMART (virtio, many USB bridges, a controller in RAID mode)
is ``unknown``: not failed, and never refused for it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

# ATA attribute ids (smartmontools' names): the ones a restore is refused for.
REALLOCATED = 5  # Reallocated_Sector_Ct
PENDING = 197  # Current_Pending_Sector
OFFLINE_UNCORRECTABLE = 198  # Offline_Uncorrectable
# smartctl's exit status bit 3: "SMART status check returned DISK FAILING".
EXIT_DISK_FAILING = 8
SMARTCTL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Health:
    path: str
    kind: str  # ata | nvme | scsi | none (no SMART answer: the health is unknown)
    passed: bool | None  # SMART overall-health / NVMe critical warning; None = unknown
    reallocated: int | None = None
    pending: int | None = None
    uncorrectable: int | None = None
    media_errors: int | None = None  # NVMe
    critical_warning: int | None = None  # NVMe, bit field
    percentage_used: int | None = None  # NVMe wear
    failing_attributes: tuple[str, ...] = ()  # ATA attributes at or below threshold now
    model: str = ""
    serial: str = ""
    note: str = ""  # why the health is unknown, or smartctl's own words

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failing_attributes"] = list(self.failing_attributes)
        return data


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _messages(data: dict[str, Any]) -> str:
    msgs = (data.get("smartctl") or {}).get("messages") or []
    return "; ".join(str(m.get("string", "")) for m in msgs if isinstance(m, dict))[:300]


def health_record(path: str, data: dict[str, Any]) -> Health:
    """The health of one disk from smartctl's JSON (``smartctl --json -H -A -i DEV``)."""
    model = str(data.get("model_name") or "")
    serial = str(data.get("serial_number") or "")
    protocol = str((data.get("device") or {}).get("protocol") or "").lower()
    status = data.get("smart_status")
    exit_status = _int((data.get("smartctl") or {}).get("exit_status")) or 0
    if not isinstance(status, dict) or "passed" not in status:
        support = data.get("smart_support") or {}
        why = _messages(data) or (
            "SMART is not available on this device"
            if support.get("available") is False
            else "smartctl gave no SMART health"
        )
        return Health(path, "none", None, model=model, serial=serial, note=why)
    passed = bool(status["passed"]) and not exit_status & EXIT_DISK_FAILING
    if protocol == "nvme" or "nvme_smart_health_information_log" in data:
        log = data.get("nvme_smart_health_information_log") or {}
        return Health(
            path,
            "nvme",
            passed,
            media_errors=_int(log.get("media_errors")),
            critical_warning=_int(log.get("critical_warning")),
            percentage_used=_int(log.get("percentage_used")),
            model=model,
            serial=serial,
            note=_messages(data),
        )
    if protocol == "scsi":  # SAS/SCSI: the grown defect list counts reallocated blocks
        return Health(
            path,
            "scsi",
            passed,
            reallocated=_int(data.get("scsi_grown_defect_list")),
            model=model or str(data.get("product") or ""),
            serial=serial,
            note=_messages(data),
        )
    table = (data.get("ata_smart_attributes") or {}).get("table") or []
    raw: dict[int, int | None] = {}
    failing: list[str] = []
    for attr in table:
        if not isinstance(attr, dict):
            continue
        ident = _int(attr.get("id"))
        if ident is None:
            continue
        raw[ident] = _int((attr.get("raw") or {}).get("value"))
        if str(attr.get("when_failed") or "") == "now":
            failing.append(str(attr.get("name") or f"attribute {ident}"))
    return Health(
        path,
        "ata",
        passed,
        reallocated=raw.get(REALLOCATED),
        pending=raw.get(PENDING),
        uncorrectable=raw.get(OFFLINE_UNCORRECTABLE),
        failing_attributes=tuple(failing),
        model=model,
        serial=serial,
        note=_messages(data),
    )


def read_health(path: str) -> Health:
    """Run smartctl on ``path``; a disk it cannot read SMART from is ``unknown``."""
    try:
        if not stat.S_ISBLK(os.stat(path).st_mode):
            return Health(path, "none", None, note="not a block device")
    except OSError as exc:
        return Health(path, "none", None, note=f"cannot stat it: {exc.strerror}")
    try:
        proc = subprocess.run(
            ["smartctl", "--json", "-H", "-A", "-i", path],
            capture_output=True,
            text=True,
            timeout=SMARTCTL_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return Health(path, "none", None, note="smartctl is not in this boot environment")
    except subprocess.TimeoutExpired:
        return Health(path, "none", None, note=f"smartctl took over {SMARTCTL_TIMEOUT:.0f} s")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        note = (proc.stderr or proc.stdout).strip()[:300] or f"smartctl exit {proc.returncode}"
        return Health(path, "none", None, note=note)
    return health_record(path, data if isinstance(data, dict) else {})


def smartctl_json(path: str) -> str:
    """smartctl's raw JSON for ``path`` (for the golden captures)."""
    proc = subprocess.run(
        ["smartctl", "--json", "-H", "-A", "-i", path],
        capture_output=True,
        text=True,
        timeout=SMARTCTL_TIMEOUT,
        check=False,
    )
    return proc.stdout
