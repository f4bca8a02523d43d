"""Hardware facts a machine reports on a register job and before every restore or capture:
SMBIOS system/board/serial/UUID, CPU, memory, disks and NICs.

SMBIOS values come from the kernel's copy of the tables (/sys/class/dmi/id, the same
tables ``dmidecode`` decodes), with ``dmidecode -s`` for any the kernel leaves out.  The
parsers are pure functions of the files' text; ``collect()`` reads them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bootimage.client import disks as disks_mod

DMI = Path("/sys/class/dmi/id")
# fact name → (sysfs file, dmidecode -s keyword)
DMI_KEYS = {
    "system_vendor": ("sys_vendor", "system-manufacturer"),
    "system_product": ("product_name", "system-product-name"),
    "system_version": ("product_version", "system-version"),
    "system_serial": ("product_serial", "system-serial-number"),
    "system_uuid": ("product_uuid", "system-uuid"),
    "board_vendor": ("board_vendor", "baseboard-manufacturer"),
    "board_product": ("board_name", "baseboard-product-name"),
    "board_serial": ("board_serial", "baseboard-serial-number"),
    "chassis_serial": ("chassis_serial", "chassis-serial-number"),
    "bios_vendor": ("bios_vendor", "bios-vendor"),
    "bios_version": ("bios_version", "bios-version"),
}
# Values firmware vendors put where they have nothing to say.
PLACEHOLDERS = frozenset(
    {
        "",
        "none",
        "n/a",
        "na",
        "not specified",
        "not applicable",
        "not settable",  # dmidecode's words for an all-0xff UUID (QEMU without -uuid)
        "not present",  # … and for an all-zero one
        "to be filled by o.e.m.",
        "default string",
        "system serial number",
        "0",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",  # a well-known AMI board default
    }
)


def clean(value: str | None) -> str:
    """A DMI value, or "" when it is a vendor's placeholder."""
    text = (value or "").strip()
    return "" if text.lower() in PLACEHOLDERS else text


def normalize_uuid(value: str | None) -> str:
    """SMBIOS UUID in lower case, "" when absent or a placeholder."""
    return clean(value).lower()


def cpu_facts(cpuinfo: str) -> dict[str, Any]:
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name") and ":" in line
    ]
    count = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor"))
    return {"model": models[0] if models else "", "threads": count}


def memory_bytes(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return 0
    return 0


def nic_facts(net: Path = Path("/sys/class/net")) -> list[dict[str, Any]]:
    found = []
    for dev in sorted(net.iterdir()) if net.exists() else []:
        if dev.name == "lo" or not (dev / "device").exists():
            continue  # virtual interfaces have no device
        driver = (
            (dev / "device" / "driver").resolve().name
            if (dev / "device" / "driver").exists()
            else ""
        )
        speed = _read(dev / "speed")  # -1 or unreadable while the link is down
        mbit = int(speed) if speed.isdigit() and int(speed) > 0 else None
        found.append(
            {
                "name": dev.name,
                "mac": _read(dev / "address").lower(),
                "driver": driver,
                "speed_mbit": mbit,
            }
        )
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def dmi_facts(
    read: Callable[[str], str], dmidecode: Callable[[str], str] | None = None
) -> dict[str, str]:
    """SMBIOS facts from sysfs file contents (``read(name)``), falling back to
    ``dmidecode(keyword)`` for values sysfs lacks."""
    out: dict[str, str] = {}
    for fact, (sysfs, keyword) in DMI_KEYS.items():
        value = clean(read(sysfs))
        if not value and dmidecode is not None:
            value = clean(dmidecode(keyword))
        out[fact] = value.lower() if fact == "system_uuid" else value
    return out


def _dmidecode(keyword: str) -> str:
    try:
        proc = subprocess.run(
            ["dmidecode", "-s", keyword], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [x for x in proc.stdout.splitlines() if x.strip() and not x.startswith("#")]
    return lines[0] if proc.returncode == 0 and lines else ""


def disk_facts(found: list[disks_mod.DiskInfo]) -> list[dict[str, Any]]:
    keep = ("path", "model", "serial", "wwn", "size", "rotational", "removable", "transport")
    return [{k: v for k, v in asdict(d).items() if k in keep} for d in found]


def collect(found: list[disks_mod.DiskInfo] | None = None) -> dict[str, Any]:
    """Every fact of this machine (run inside the boot environment)."""
    facts: dict[str, Any] = dict(dmi_facts(lambda name: _read(DMI / name), _dmidecode))
    facts["cpu"] = cpu_facts(_read(Path("/proc/cpuinfo")))
    facts["memory_bytes"] = memory_bytes(_read(Path("/proc/meminfo")))
    facts["disks"] = disk_facts(disks_mod.discover() if found is None else found)
    facts["nics"] = nic_facts()
    return facts


def summary(facts: Mapping[str, Any]) -> str:
    """One log line: what this machine is."""
    cpu = facts.get("cpu") or {}
    mem = int(facts.get("memory_bytes") or 0)
    return (
        f"machine: {facts.get('system_vendor') or '?'} {facts.get('system_product') or '?'},"
        f" serial {facts.get('system_serial') or '-'},"
        f" SMBIOS UUID {facts.get('system_uuid') or '-'};"
        f" {cpu.get('model') or 'CPU ?'} x{cpu.get('threads') or '?'}, {mem / 2**30:.1f} GiB RAM,"
        f" {len(facts.get('disks') or [])} disk(s), {len(facts.get('nics') or [])} NIC(s)"
    )
