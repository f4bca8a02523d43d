"""Whether a disk is healthy enough to be written: the appliance's decision on what the
client read (bootimage.client.health records, as JSON), pure.

A disk is refused when SMART's overall health check failed (or an NVMe critical warning
is set), when an ATA attribute is failing now, or when its reallocated or pending
sectors (NVMe: media errors) exceed the appliance's limits (``slate serve
--disk-max-reallocated`` / ``--disk-max-pending``).  A disk that gave no SMART answer is
``unknown``: reported, never refused for it.  A job with ``ignore_disk_health`` writes
anyway, and says so in its log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A few reallocated sectors are routine on an old disk; dozens mean it is going.  A
# pending sector is one the disk could not read back: a handful is worth a warning.
DEFAULT_MAX_REALLOCATED = 50
DEFAULT_MAX_PENDING = 10


@dataclass(frozen=True)
class Verdict:
    path: str
    status: str  # ok | unknown | refused
    reasons: tuple[str, ...]
    facts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "reasons": list(self.reasons),
            "facts": self.facts,
        }

    def line(self) -> str:
        """One job-log line a technician reads."""
        f = self.facts
        what = (
            f"{self.path} ({f.get('model') or 'unknown model'}, {f.get('serial') or 'no serial'})"
        )
        if self.status == "unknown":
            return f"disk health {what}: unknown, no SMART answer ({f.get('note') or 'no reason'})"
        numbers = ", ".join(
            f"{k.replace('_', ' ')} {f[k]}"
            for k in ("reallocated", "pending", "uncorrectable", "media_errors", "percentage_used")
            if f.get(k) is not None
        )
        head = f"disk health {what}: {self.status}, SMART {f.get('kind')} overall "
        head += "PASSED" if f.get("passed") else "FAILED"
        tail = f" ({numbers})" if numbers else ""
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return head + tail + why


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def judge(
    record: dict[str, Any],
    *,
    max_reallocated: int = DEFAULT_MAX_REALLOCATED,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> Verdict:
    """The verdict on one disk's health record."""
    path = str(record.get("path") or "?")[:200]
    facts: dict[str, Any] = {
        k: record.get(k)
        for k in (
            "kind",
            "passed",
            "reallocated",
            "pending",
            "uncorrectable",
            "media_errors",
            "critical_warning",
            "percentage_used",
            "failing_attributes",
            "model",
            "serial",
            "note",
        )
        if k in record
    }
    passed = record.get("passed")
    if record.get("kind") not in ("ata", "nvme", "scsi") or passed is None:
        return Verdict(path, "unknown", (), facts)
    reasons: list[str] = []
    if passed is not True:
        reasons.append("SMART overall health check FAILED")
    warning = _count(record.get("critical_warning"))
    if warning:
        reasons.append(f"NVMe critical warning 0x{warning:02x}")
    failing = record.get("failing_attributes") or []
    if isinstance(failing, list) and failing:
        reasons.append("failing now: " + ", ".join(str(x) for x in failing[:5]))
    for key, limit, label in (
        ("reallocated", max_reallocated, "reallocated sectors"),
        ("pending", max_pending, "pending sectors"),
        ("uncorrectable", max_pending, "offline-uncorrectable sectors"),
        ("media_errors", max_pending, "NVMe media errors"),
    ):
        n = _count(record.get(key))
        if n is not None and n > limit:
            reasons.append(f"{n} {label} (more than {limit})")
    return Verdict(path, "refused" if reasons else "ok", tuple(reasons), facts)


def judge_all(
    records: list[dict[str, Any]], *, max_reallocated: int, max_pending: int
) -> list[Verdict]:
    return [
        judge(r, max_reallocated=max_reallocated, max_pending=max_pending)
        for r in records
        if isinstance(r, dict)
    ]


def refusal(verdicts: list[Verdict]) -> str | None:
    """The job's failure reason when a disk is refused, else None."""
    bad = [v for v in verdicts if v.status == "refused"]
    if not bad:
        return None
    parts = [f"{v.path}: {'; '.join(v.reasons)}" for v in bad]
    return "disk refused for its health before anything was written: " + " | ".join(parts)


REFUSAL_HINT = (
    "replace the disk; to write it anyway, start the job again with --ignore-disk-health"
    " (console: 'Ignore disk health')"
)
