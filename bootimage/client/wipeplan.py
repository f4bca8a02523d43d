"""The wipe's pure core (issue 28, part 2): which erase method a disk gets, the exact
commands the client would run for it, which bytes the verify step reads back, and the
per-disk erasure report.

Not wired to jobs yet: nothing here runs a command, opens a disk or talks to the
appliance.  The ``wipe`` action of the job table still does nothing; the client's wipe
step, ``slate job wipe`` and the console's report are the next steps (docs/bootimage.md,
"Wipe (planned)").

Methods, strongest first, with their NIST SP 800-88 category:

* ``crypto-erase`` (Purge): NVMe Sanitize with Crypto Erase, else NVMe Format with
  Secure Erase Settings 2 when the controller says crypto erase is supported (FNA bit 2);
* ``secure-erase`` (Purge): NVMe Sanitize Block Erase, else NVMe Format with SES 1
  (user data erase), else ATA SECURITY ERASE UNIT (enhanced when the drive supports it);
* ``discard`` (Clear): ``blkdiscard`` where the device promises zeroes afterwards (a
  write-zeroes offload, or the legacy ``discard_zeroes_data``);
* ``overwrite`` (Clear): one pass of zeroes written by the client itself (no command).

``plan()`` picks the strongest a disk supports for ``auto``; a forced method the disk
cannot do is refused (:class:`DiskRefused` with a hint) unless ``fallback=True``, which
takes the next weaker one and records why.  Inputs are the disk's facts
(:class:`WipeFacts`, from udev/sysfs), ``nvme id-ctrl -o json`` parsed by
:func:`parse_nvme_id_ctrl` and the Security section of ``hdparm -I`` parsed by
:func:`parse_hdparm_security` (both tested on real outputs, tests/golden/wipe/).
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from appliance.errors import DiskRefused, SlateError

METHODS = ("crypto-erase", "secure-erase", "discard", "overwrite")  # strongest first
CHOICES = ("auto", *METHODS)
NIST = {"crypto-erase": "Purge", "secure-erase": "Purge", "discard": "Clear", "overwrite": "Clear"}
# The ATA password set for the erase only: SECURITY ERASE UNIT needs one, and a
# successful erase clears it again.
ATA_PASSWORD = "slate-wipe"  # noqa: S105 - not a secret: it lives only during the erase
FROZEN_FIX = "suspend and resume the machine (rtcwake -m mem -s 5), then run the wipe again"
GIB = 1 << 30
MIB = 1 << 20
# sysfs files (relative to the block device) the discard decision reads.
SYSFS_ATTRIBUTES = (
    "queue/discard_granularity",
    "queue/discard_max_bytes",
    "queue/discard_zeroes_data",
    "queue/write_zeroes_max_bytes",
)


@dataclass(frozen=True)
class WipeFacts:
    """What udev and sysfs say about the disk to wipe."""

    path: str
    transport: str  # ata|scsi|nvme|virtio|usb|mmc|unknown (bootimage.client.disks)
    model: str
    serial: str
    size: int
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    rotational: bool = False
    removable: bool = False
    read_only: bool = False
    discard_granularity: int = 0
    discard_max_bytes: int = 0
    discard_zeroes_data: bool = False
    write_zeroes_max_bytes: int = 0


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def facts_from(disk: Any, attrs: Mapping[str, str]) -> WipeFacts:
    """WipeFacts of a :class:`bootimage.client.disks.DiskInfo` and its ``SYSFS_ATTRIBUTES``."""
    return WipeFacts(
        path=disk.path,
        transport=disk.transport,
        model=disk.model or "",
        serial=disk.serial or "",
        size=disk.size,
        logical_sector_size=disk.logical_sector_size,
        physical_sector_size=disk.physical_sector_size,
        rotational=disk.rotational,
        removable=disk.removable,
        read_only=disk.read_only,
        discard_granularity=_int(attrs.get("queue/discard_granularity")),
        discard_max_bytes=_int(attrs.get("queue/discard_max_bytes")),
        discard_zeroes_data=_int(attrs.get("queue/discard_zeroes_data")) == 1,
        write_zeroes_max_bytes=_int(attrs.get("queue/write_zeroes_max_bytes")),
    )


# ---------------------------------------------------------------------------
# tool outputs


@dataclass(frozen=True)
class AtaSecurity:
    """The Security section of ``hdparm -I`` (ATA Security feature set, IDENTIFY word 128)."""

    supported: bool = False
    enabled: bool = False  # a user password is set
    locked: bool = False
    frozen: bool = False
    count_expired: bool = False  # five wrong passwords: a power cycle resets it
    enhanced_erase: bool = False
    erase_seconds: int | None = None  # the drive's own estimate
    enhanced_erase_seconds: int | None = None


_TIME = re.compile(r"(?:more than )?(\d+)min for (ENHANCED )?SECURITY ERASE UNIT")


def parse_hdparm_security(text: str) -> AtaSecurity:
    """The security state from ``hdparm -I DEV`` output; a drive (or a device that is
    no ATA drive) whose output has no Security section supports none of it."""
    lines = text.splitlines()
    start = next((i for i, x in enumerate(lines) if x.strip().startswith("Security:")), None)
    if start is None:
        return AtaSecurity()
    found: dict[str, bool] = {}
    times: dict[bool, int] = {}
    for line in lines[start + 1 :]:
        if line and not line[0].isspace():
            break  # the next section ("Checksum:", "Logical Unit WWN Device Identifier:")
        words = line.split()
        if not words:
            continue
        negated = words[0] == "not"
        rest = " ".join(words[1:] if negated else words)
        if rest == "supported: enhanced erase":
            found["enhanced"] = not negated
        elif rest.startswith("expired: security count"):
            found["expired"] = not negated
        elif rest in ("supported", "enabled", "locked", "frozen"):
            found[rest] = not negated
        # "more than 508min": the drive says only that it is long; the bound is kept
        for minutes, enhanced in _TIME.findall(line):
            times[bool(enhanced)] = int(minutes) * 60
    return AtaSecurity(
        supported=found.get("supported", False),
        enabled=found.get("enabled", False),
        locked=found.get("locked", False),
        frozen=found.get("frozen", False),
        count_expired=found.get("expired", False),
        enhanced_erase=found.get("enhanced", False),
        erase_seconds=times.get(False),
        enhanced_erase_seconds=times.get(True),
    )


@dataclass(frozen=True)
class NvmeCaps:
    """The erase-related fields of NVMe Identify Controller."""

    model: str = ""
    serial: str = ""
    format_nvm: bool = False  # OACS bit 1
    sanitize_crypto: bool = False  # SANICAP bit 0
    sanitize_block: bool = False  # SANICAP bit 1
    sanitize_overwrite: bool = False  # SANICAP bit 2
    format_crypto: bool = False  # FNA bit 2: crypto erase as part of Format's secure erase
    format_all_namespaces: bool = False  # FNA bit 0: Format acts on every namespace
    namespaces: int = 1  # NN: how many namespaces the controller supports


def parse_nvme_id_ctrl(json_text: str) -> NvmeCaps:
    """The capabilities from ``nvme id-ctrl DEV -o json``.  (OACS has no Sanitize bit:
    a controller supports Sanitize exactly when SANICAP names an action.)"""
    try:
        data = json.loads(json_text)
    except ValueError as exc:
        raise SlateError(f"nvme id-ctrl printed no JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SlateError("nvme id-ctrl printed JSON that is not an object")
    oacs, sanicap, fna = (_int(data.get(k)) for k in ("oacs", "sanicap", "fna"))
    return NvmeCaps(
        model=str(data.get("mn") or "").strip(),
        serial=str(data.get("sn") or "").strip(),
        format_nvm=bool(oacs & 0x2),
        sanitize_crypto=bool(sanicap & 0x1),
        sanitize_block=bool(sanicap & 0x2),
        sanitize_overwrite=bool(sanicap & 0x4),
        format_crypto=bool(oacs & 0x2 and fna & 0x4),
        format_all_namespaces=bool(fna & 0x1),
        namespaces=_int(data.get("nn"), 1),
    )


# ---------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class Plan:
    method: str  # one of METHODS
    nist: str  # Clear | Purge
    commands: tuple[tuple[str, ...], ...]  # argv, in order; () for overwrite (done in Python)
    why: tuple[str, ...]
    estimated_seconds: int | None = None

    def command_lines(self) -> list[str]:
        return [shlex.join(argv) for argv in self.commands]


@dataclass(frozen=True)
class _No:
    reason: str
    hint: str | None = None


@dataclass(frozen=True)
class _Can:
    commands: tuple[tuple[str, ...], ...]
    how: str
    estimated_seconds: int | None = None
    notes: tuple[str, ...] = field(default=())


def controller_of(path: str) -> str:
    """/dev/nvme0n1 → /dev/nvme0 (Sanitize is a controller command)."""
    return re.sub(r"n\d+$", "", path) if re.search(r"nvme\d+n\d+$", path) else path


def _nvme(facts: WipeFacts, nvme: NvmeCaps | None) -> NvmeCaps | _No:
    if facts.transport != "nvme":
        return _No(f"the disk is not NVMe ({facts.transport})")
    if nvme is None:
        return _No("nvme id-ctrl gave no answer")
    return nvme


def _sanitize_note(caps: NvmeCaps) -> tuple[str, ...]:
    return (
        (f"Sanitize erases every namespace of the controller (it supports {caps.namespaces})",)
        if caps.namespaces > 1
        else ()
    )


def _format_note(caps: NvmeCaps) -> tuple[str, ...]:
    return (
        ("Format acts on every namespace of the controller",) if caps.format_all_namespaces else ()
    )


def _crypto(facts: WipeFacts, nvme: NvmeCaps | None, ata: AtaSecurity | None) -> _Can | _No:
    argv: tuple[str, ...]
    caps = _nvme(facts, nvme)
    if isinstance(caps, _No):
        return _No(f"crypto erase needs an NVMe disk: {caps.reason}")
    if caps.sanitize_crypto:
        argv = ("nvme", "sanitize", controller_of(facts.path), "--sanact=4")
        return _Can((argv,), "NVMe Sanitize, Crypto Erase", notes=_sanitize_note(caps))
    if caps.format_crypto:
        argv = ("nvme", "format", facts.path, "--ses=2", "--force")
        return _Can(
            (argv,), "NVMe Format, Secure Erase Settings 2 (crypto erase)", notes=_format_note(caps)
        )
    return _No("the NVMe controller supports neither Sanitize Crypto Erase nor Format crypto erase")


def _secure(facts: WipeFacts, nvme: NvmeCaps | None, ata: AtaSecurity | None) -> _Can | _No:
    argv: tuple[str, ...]
    if facts.transport == "nvme":
        caps = _nvme(facts, nvme)
        if isinstance(caps, _No):
            return caps
        if caps.sanitize_block:
            argv = ("nvme", "sanitize", controller_of(facts.path), "--sanact=2")
            return _Can((argv,), "NVMe Sanitize, Block Erase", notes=_sanitize_note(caps))
        if caps.format_nvm:
            argv = ("nvme", "format", facts.path, "--ses=1", "--force")
            return _Can(
                (argv,),
                "NVMe Format, Secure Erase Settings 1 (user data erase)",
                notes=_format_note(caps),
            )
        return _No("the NVMe controller supports neither Sanitize Block Erase nor Format NVM")
    if facts.transport != "ata":
        return _No(f"secure erase needs an ATA or NVMe disk, not {facts.transport}")
    if ata is None or not ata.supported:
        return _No("the drive does not support the ATA Security feature set")
    if ata.frozen:
        return _No("the ATA drive's security is frozen (the firmware froze it at boot)", FROZEN_FIX)
    if ata.locked or ata.enabled:
        return _No(
            "the ATA drive has a security password set" + (" and is locked" if ata.locked else ""),
            "remove the drive's password (BIOS setup, or hdparm --security-disable with it),"
            " then run the wipe again",
        )
    if ata.count_expired:
        return _No(
            "the ATA drive's security attempt count has expired",
            "power the machine off and on, then run the wipe again",
        )
    set_pass = ("hdparm", "--user-master", "u", "--security-set-pass", ATA_PASSWORD, facts.path)
    if ata.enhanced_erase:
        erase = (
            "hdparm",
            "--user-master",
            "u",
            "--security-erase-enhanced",
            ATA_PASSWORD,
            facts.path,
        )
        return _Can((set_pass, erase), "ATA Enhanced Security Erase", ata.enhanced_erase_seconds)
    erase = ("hdparm", "--user-master", "u", "--security-erase", ATA_PASSWORD, facts.path)
    return _Can((set_pass, erase), "ATA Security Erase", ata.erase_seconds)


def _discard(facts: WipeFacts, nvme: NvmeCaps | None, ata: AtaSecurity | None) -> _Can | _No:
    argv: tuple[str, ...]
    if facts.write_zeroes_max_bytes > 0:
        argv = ("blkdiscard", "-z", "-f", facts.path)
        return _Can((argv,), "blkdiscard -z (the device zeroes ranges itself: write zeroes)")
    if facts.discard_max_bytes > 0 and facts.discard_zeroes_data:
        argv = ("blkdiscard", "-f", facts.path)
        return _Can((argv,), "blkdiscard (discarded blocks read back as zeroes)")
    if facts.discard_max_bytes > 0:
        return _No("the disk discards but does not promise zeroes afterwards")
    return _No("the disk supports neither discard nor write zeroes")


def _overwrite(facts: WipeFacts, nvme: NvmeCaps | None, ata: AtaSecurity | None) -> _Can | _No:
    return _Can((), "one pass of zeroes over every byte")


_HOW: dict[str, Callable[[WipeFacts, NvmeCaps | None, AtaSecurity | None], _Can | _No]] = {
    "crypto-erase": _crypto,
    "secure-erase": _secure,
    "discard": _discard,
    "overwrite": _overwrite,
}


def plan(
    facts: WipeFacts,
    nvme: NvmeCaps | None = None,
    ata: AtaSecurity | None = None,
    method: str = "auto",
    fallback: bool = False,
    removable_named: bool = False,
) -> Plan:
    """How to wipe this disk.  ``auto`` is the strongest method the disk supports; a
    forced ``method`` it cannot do raises :class:`DiskRefused`, or with ``fallback``
    the next weaker method is planned and the refusal is recorded in ``why``."""
    if method not in CHOICES:
        raise SlateError(
            f"unknown wipe method {method!r}", hint=f"choose one of: {', '.join(CHOICES)}"
        )
    if facts.read_only:
        raise DiskRefused(f"{facts.path} is read-only: it cannot be wiped")
    if facts.removable and not removable_named:
        raise DiskRefused(
            f"{facts.path} is removable media: it is wiped only when named",
            hint="name the disk by its serial to wipe removable media",
        )
    order = METHODS if method == "auto" else METHODS[METHODS.index(method) :]
    why: list[str] = []
    for i, name in enumerate(order):
        got = _HOW[name](facts, nvme, ata)
        if isinstance(got, _Can):
            why.append(f"{name}: {got.how}")
            why.extend(got.notes)
            return Plan(name, NIST[name], got.commands, tuple(why), got.estimated_seconds)
        if i == 0 and method != "auto" and not fallback:
            raise DiskRefused(
                f"{facts.path} cannot be wiped by {name}: {got.reason}", hint=got.hint
            )
        skipped = f"{name} not possible: {got.reason}"
        why.append(skipped + (f" (to use it: {got.hint})" if got.hint else ""))
    raise AssertionError("overwrite is always possible")  # pragma: no cover


# ---------------------------------------------------------------------------
# verify


@dataclass(frozen=True)
class VerifyPlan:
    size: int
    full: bool
    seed: int
    ranges: tuple[tuple[int, int], ...]  # (offset, length), sorted, not overlapping

    @property
    def bytes_checked(self) -> int:
        return sum(n for _, n in self.ranges)


def verify_plan(
    size: int,
    region: int = GIB,
    samples_per_region: int = 4,
    sample_bytes: int = MIB,
    full: bool = False,
    seed: int = 0,
    align: int = 4096,
) -> VerifyPlan:
    """The byte ranges read back after a wipe: ``samples_per_region`` samples of
    ``sample_bytes`` at seeded random aligned offsets in every ``region`` (the same
    seed gives the same ranges), always the first and the last ``sample_bytes`` of the
    disk; with ``full`` every byte, in ``sample_bytes`` pieces."""
    if size <= 0 or region <= 0 or sample_bytes <= 0 or align <= 0:
        raise SlateError("verify needs a positive size, region, sample and alignment")
    if full:
        ranges = [(o, min(sample_bytes, size - o)) for o in range(0, size, sample_bytes)]
        return VerifyPlan(size, True, seed, tuple(ranges))
    wanted = [(0, min(sample_bytes, size)), (max(0, size - sample_bytes), min(sample_bytes, size))]
    for start in range(0, size, region):
        end = min(size, start + region)
        rng = random.Random(f"{seed}:{start}")  # noqa: S311 - sampling, not secrets
        room = end - start - sample_bytes
        for _ in range(samples_per_region):
            if room <= 0:
                wanted.append((start, end - start))
                continue
            off = start + rng.randrange(0, room + 1) // align * align
            wanted.append((off, sample_bytes))
    merged: list[tuple[int, int]] = []
    for off, n in sorted(wanted):
        if merged and off <= merged[-1][0] + merged[-1][1]:
            last_off, last_n = merged[-1]
            merged[-1] = (last_off, max(last_off + last_n, off + n) - last_off)
        else:
            merged.append((off, n))
    return VerifyPlan(size, False, seed, tuple(merged))


def check_zeroed(
    read_fn: Callable[[int, int], bytes], plan: VerifyPlan, chunk: int = 4 * MIB
) -> int | None:
    """The first offset in ``plan`` that does not read back as zero, or None.
    ``read_fn(offset, length)`` reads the disk; a short read (the disk went away) fails."""
    zeros = bytes(chunk)
    for off, n in plan.ranges:
        done = 0
        while done < n:
            want = min(chunk, n - done)
            data = read_fn(off + done, want)
            if len(data) != want:
                raise SlateError(
                    f"the read-back stopped at byte {off + done + len(data)}: "
                    f"{len(data)} of {want} bytes came back"
                )
            if data != zeros[:want]:
                return off + done + (len(data) - len(data.lstrip(b"\0")))
            done += want
    return None


def fd_reader(fd: int) -> Callable[[int, int], bytes]:
    """``read_fn`` for :func:`check_zeroed` over an open file or block device."""

    def read(offset: int, length: int) -> bytes:
        parts = []
        while length:
            got = os.pread(fd, length, offset)
            if not got:
                break
            parts.append(got)
            offset, length = offset + len(got), length - len(got)
        return b"".join(parts)

    return read


# ---------------------------------------------------------------------------
# report


def _utc(when: datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise SlateError("erasure report times must carry a time zone")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def erasure_report(
    facts: WipeFacts,
    wipe: Plan,
    *,
    job_id: str,
    requested_by: str,
    started: datetime,
    finished: datetime | None,
    verify: VerifyPlan | None,
    first_nonzero: int | None = None,
    error: str | None = None,
    bytes_done: int | None = None,
) -> dict[str, Any]:
    """The per-disk erasure report, keys in a fixed order (it is shown and stored as is).

    ``verify`` None means the read-back did not run (the wipe failed first);
    ``first_nonzero`` is :func:`check_zeroed`'s answer; ``error`` a failed wipe's reason
    with ``bytes_done`` the bytes written or erased so far."""
    if error is not None:
        verify_result = "not run" if verify is None else "failed"
    elif verify is None:
        verify_result = "not run"
    else:
        verify_result = "passed" if first_nonzero is None else "failed"
    ok = error is None and verify_result == "passed"
    return {
        "job_id": job_id,
        "requested_by": requested_by,
        "disk": {
            "model": facts.model,
            "serial": facts.serial,
            "size_bytes": facts.size,
            "transport": facts.transport,
            "path": facts.path,
        },
        "method": wipe.method,
        "nist_category": wipe.nist,
        "commands": wipe.command_lines(),
        "why": list(wipe.why),
        "started_utc": _utc(started),
        "finished_utc": _utc(finished),
        "verify": {
            "mode": None if verify is None else ("full" if verify.full else "sample"),
            "result": verify_result,
            "bytes_checked": None if verify is None else verify.bytes_checked,
            "first_nonzero_offset": first_nonzero,
        },
        "result": "erased" if ok else "failed",
        "error": error,
        "bytes_done": bytes_done,
    }
