"""Disk discovery: udev facts turned into plain records.

``disk_record(properties, attributes)`` is a pure function of what udev and sysfs say
about one block device (tested against captured real udev data in
tests/golden/udev/); ``discover()`` feeds it from pyudev.  Devices a restore must never
consider are filtered out here: RAM disks, zram, loop, optical, device-mapper/md
members, and devices of size zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

# Kernel names of devices that are never restore targets.
_SKIP_PREFIXES = ("ram", "zram", "loop", "sr", "fd", "dm-", "md", "nbd", "mtdblock")
# Attributes read from sysfs (relative to the device's sys path).
ATTRIBUTES = (
    "size",
    "removable",
    "ro",
    "queue/logical_block_size",
    "queue/physical_block_size",
    "queue/rotational",
)


@dataclass(frozen=True)
class DiskInfo:
    path: str  # /dev/sda — for messages only; identity is serial/WWN/by-path
    name: str
    size: int  # bytes
    logical_sector_size: int
    physical_sector_size: int
    serial: str | None
    wwn: str | None
    model: str | None
    by_path: str | None
    rotational: bool
    removable: bool
    read_only: bool
    transport: str  # ata|scsi|nvme|virtio|usb|mmc|unknown

    def describe(self) -> str:
        ident = self.serial or self.wwn or self.by_path or "no serial"
        return f"{self.path} ({_gib(self.size)}, {self.model or 'unknown model'}, {ident})"


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def transport_of(props: Mapping[str, str]) -> str:
    path = props.get("ID_PATH", "")
    bus = props.get("ID_BUS", "")
    name = props.get("DEVNAME", "")
    if "usb" in path or bus == "usb":
        return "usb"
    if "nvme" in path or name.startswith("/dev/nvme"):
        return "nvme"
    if name.startswith("/dev/vd") or "virtio" in path:
        return "virtio"
    if name.startswith("/dev/mmcblk"):
        return "mmc"
    if bus in ("ata", "scsi"):
        return bus
    return "ata" if "-ata-" in path else "unknown"


def disk_record(props: Mapping[str, str], attrs: Mapping[str, str]) -> DiskInfo | None:
    """The plain record of one udev block device, or None if it is not a candidate disk."""
    name = props.get("DEVNAME", "").removeprefix("/dev/")
    if props.get("DEVTYPE") != "disk" or not name or name.startswith(_SKIP_PREFIXES):
        return None
    size = _int(attrs.get("size")) * 512  # sysfs counts 512-byte units whatever the sector
    if size == 0:
        return None
    logical = _int(attrs.get("queue/logical_block_size"), 512)
    removable = attrs.get("removable", "0").strip() == "1" or transport_of(props) == "usb"
    return DiskInfo(
        path=props.get("DEVNAME", f"/dev/{name}"),
        name=name,
        size=size,
        logical_sector_size=logical,
        physical_sector_size=_int(attrs.get("queue/physical_block_size"), logical),
        # SCSI disks with a WWN get ID_SERIAL_SHORT from it; the unit serial is separate.
        serial=props.get("ID_SCSI_SERIAL")
        or props.get("ID_SERIAL_SHORT")
        or props.get("ID_SERIAL")
        or None,
        wwn=props.get("ID_WWN_WITH_EXTENSION") or props.get("ID_WWN") or None,
        model=(props.get("ID_MODEL") or "").replace("_", " ") or None,
        by_path=f"/dev/disk/by-path/{props['ID_PATH']}" if props.get("ID_PATH") else None,
        rotational=attrs.get("queue/rotational", "0").strip() == "1",
        removable=removable,
        read_only=attrs.get("ro", "0").strip() == "1",
        transport=transport_of(props),
    )


def udev_facts() -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(properties, sysfs attributes) of every block device udev knows."""
    import pyudev  # imported here so the pure parts need no udev

    context = pyudev.Context()
    for device in context.list_devices(subsystem="block"):
        props = {str(k): str(v) for k, v in device.properties.items()}
        attrs: dict[str, str] = {}
        for attr in ATTRIBUTES:
            try:
                raw = device.attributes.get(attr)
            except (OSError, KeyError):
                raw = None
            if raw is not None:
                attrs[attr] = raw.decode(errors="replace").strip()
        yield props, attrs


def discover() -> list[DiskInfo]:
    """Candidate disks of this machine, in kernel-name order."""
    found = (disk_record(p, a) for p, a in udev_facts())
    return sorted((d for d in found if d is not None), key=lambda d: d.name)
