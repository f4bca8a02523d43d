"""Choosing the target disk by the job's rule, and refusing unsafe ones before a byte
is written.  Pure: works on :class:`DiskInfo` records, so it is tested with real udev
captures.  Rule: the disk the hints (serial, WWN, by-path, size) name; without hints the
one non-removable disk that fits.  Refused: smaller than the image, different logical
sector size, removable (unless the job allows it), read-only, busy, ambiguous."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.errors import DiskRefused
from bootimage.client.disks import DiskInfo


@dataclass(frozen=True)
class Need:
    size: int  # bytes the image's disk spans
    logical_sector_size: int
    label: str = "the image"  # for messages: "image 'lab' disk 0 (40.0 GiB)"


def problems(
    disk: DiskInfo, need: Need, *, allow_removable: bool = False, busy: Collection[str] = ()
) -> list[str]:
    """Why ``disk`` cannot take the image (empty = it can)."""
    why = []
    if disk.size < need.size:
        why.append(f"too small ({_size(disk.size)} < {_size(need.size)})")
    if disk.logical_sector_size != need.logical_sector_size:
        why.append(
            f"{disk.logical_sector_size}-byte sectors, the image has "
            f"{need.logical_sector_size}-byte sectors"
        )
    if disk.removable and not allow_removable:
        why.append("removable")
    if disk.read_only:
        why.append("read-only")
    if disk.name in busy:
        why.append("in use (mounted, held, or the boot disk)")
    return why


def truthy(value: Any) -> bool:
    """Hint values arrive as text (``allow_removable=yes``) or JSON booleans."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def matches(disk: DiskInfo, hints: Mapping[str, Any]) -> bool:
    if hints.get("serial") and disk.serial != str(hints["serial"]):
        return False
    if hints.get("wwn") and (disk.wwn or "").lower() != str(hints["wwn"]).lower():
        return False
    if hints.get("by_path") and disk.by_path != hints["by_path"]:
        return False
    if (
        hints.get("size")
        and abs(disk.size - parse_size(hints["size"])) > parse_size(hints["size"]) * SIZE_TOLERANCE
    ):
        return False
    if hints.get("min_size") and disk.size < parse_size(hints["min_size"]):
        return False
    if hints.get("max_size") and disk.size > parse_size(hints["max_size"]):
        return False
    return not (hints.get("model") and (disk.model or "") != str(hints["model"]))


# Disks are sold in decimal units and report a little more or less: "size=512G" means
# "about 512 GB".  5 % keeps a 480 GB and a 512 GB disk apart.
SIZE_TOLERANCE = 0.05
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(I?)B?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """Bytes of ``512G`` (decimal), ``64MiB`` (binary) or a plain number."""
    match = _SIZE.match(str(value))
    if not match:
        raise DiskRefused(
            f"disk hint size {value!r} is not a size",
            hint="write sizes like 512G (decimal) or 64MiB (binary)",
        )
    number, prefix, binary = match.groups()
    power = " KMGT".index(prefix.upper() or " ")
    return int(float(number) * (1024 if binary else 1000) ** power)


IDENTITY = ("serial", "wwn", "by_path", "size", "min_size", "max_size", "model")


def choose(
    disks: Sequence[DiskInfo],
    need: Need,
    hints: Mapping[str, Any] | None = None,
    busy: Collection[str] = (),
) -> DiskInfo:
    """The one disk the image goes to, or :class:`DiskRefused` naming every disk."""
    hints = dict(hints or {})
    allow_removable = truthy(hints.get("allow_removable"))
    if not disks:
        raise DiskRefused(
            f"no disk found for {need.label}",
            hint="check that the machine's disk controller is supported (see the console log)",
        )
    if any(hints.get(k) for k in IDENTITY):
        named = [d for d in disks if matches(d, hints)]
        if not named:
            raise DiskRefused(
                f"no disk matches {_hints(hints)}; disks here: {_list(disks)}",
                hint="fix the job's disk hints (serial, wwn, by_path, size)",
            )
        if len(named) > 1:
            raise DiskRefused(
                f"{len(named)} disks match {_hints(hints)}: {_list(named)}",
                hint="name the disk by serial or WWN in the job's disk hints",
            )
        why = problems(named[0], need, allow_removable=allow_removable, busy=busy)
        if why:
            raise DiskRefused(
                f"refusing {named[0].describe()} for {need.label}: {'; '.join(why)}",
                hint="pick another disk or another image",
            )
        return named[0]
    fit = [d for d in disks if not problems(d, need, allow_removable=allow_removable, busy=busy)]
    if len(fit) == 1:
        return fit[0]
    if len(fit) > 1:
        raise DiskRefused(
            f"{len(fit)} disks could take {need.label}: {_list(fit)}; the choice is ambiguous",
            hint="name the target by serial or WWN in the job's disk hints",
        )
    found = {d.name: problems(d, need, allow_removable=allow_removable, busy=busy) for d in disks}
    reasons = "; ".join(f"{d.describe()}: {', '.join(found[d.name])}" for d in disks)
    raise DiskRefused(
        f"no disk can take {need.label}: {reasons}",
        hint="use a larger disk or an image made for this disk's sector size",
    )


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _list(disks: Sequence[DiskInfo]) -> str:
    return ", ".join(d.describe() for d in disks)


def _hints(hints: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={hints[k]}" for k in IDENTITY if hints.get(k))
