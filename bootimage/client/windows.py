"""Windows in a restored (or captured) NTFS volume: the computer name in the offline
SYSTEM hive, whether the installation was generalized (sysprep), and the BitLocker
signature.  The hive is edited with Debian's python3-hivex (in the boot environment)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.errors import SlateError

SYSTEM_HIVE = ("Windows", "System32", "config", "SYSTEM")
BITLOCKER_SIGNATURE = b"-FVE-FS-"  # OEM id of a BitLocker volume's boot sector (bytes 3..10)
REG_SZ = 1
GENERALIZED = 7  # Setup\Status\SysprepStatus\GeneralizationState after `sysprep /generalize`
_CONTROL_SET = re.compile(r"ControlSet\d{3}", re.IGNORECASE)


def is_bitlocker(boot_sector: bytes) -> bool:
    return boot_sector[3:11] == BITLOCKER_SIGNATURE


def find_path(root: Path, parts: tuple[str, ...]) -> Path | None:
    """``root/parts…`` matched case-insensitively (ntfs-3g is case-sensitive; Windows is
    not, and installations differ: System32 / system32, SYSTEM / system)."""
    here = root
    for part in parts:
        try:
            names = os.listdir(here)
        except OSError:
            return None
        match = next((n for n in names if n.lower() == part.lower()), None)
        if match is None:
            return None
        here = here / match
    return here


def netbios_name(hostname: str) -> str:
    """The computer (NetBIOS) name Windows keeps beside the DNS host name: the first
    label, upper case, at most 15 characters."""
    return hostname.split(".")[0][:15].upper()


def _sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def _open(path: Path, *, write: bool) -> Any:
    try:
        import hivex  # Debian's python3-hivex: in the boot environment, not on PyPI
    except ImportError as exc:
        raise SlateError(
            "cannot edit the Windows registry: python3-hivex is missing from the boot environment",
            hint="rebuild the boot environment (`slate bootimage build`)",
        ) from exc
    try:
        return hivex.Hivex(str(path), write=write)
    except RuntimeError as exc:
        raise SlateError(f"cannot open the registry hive {path}: {exc}") from exc


def _child(h: Any, node: int, path: str) -> int | None:
    for name in path.split("\\"):
        node = h.node_get_child(node, name)
        if not node:
            return None
    return node


def _control_sets(h: Any) -> Iterator[tuple[str, int]]:
    for node in h.node_children(h.root()):
        name = h.node_name(node)
        if _CONTROL_SET.fullmatch(name):
            yield name, node


def set_computer_name(hive: Path, hostname: str) -> tuple[list[str], list[str]]:
    """Write the host name into every ControlSet00N of the SYSTEM hive at ``hive``;
    returns (what was set, what was not there to set)."""
    computer = netbios_name(hostname)
    wanted = (
        ("Control\\ComputerName\\ComputerName", "ComputerName", computer),
        ("Control\\ComputerName\\ActiveComputerName", "ComputerName", computer),
        ("Services\\Tcpip\\Parameters", "Hostname", hostname.split(".")[0]),
        ("Services\\Tcpip\\Parameters", "NV Hostname", hostname.split(".")[0]),
    )
    h = _open(hive, write=True)
    done: list[str] = []
    missing: list[str] = []
    sets = list(_control_sets(h))
    if not sets:
        missing.append("ControlSet00N (the hive has none)")
    for set_name, node in sets:
        for key, value, text in wanted:
            where = f"{set_name}\\{key}"
            target = _child(h, node, key)
            if target is None:
                missing.append(where)
                continue
            try:
                h.node_set_value(target, {"key": value, "t": REG_SZ, "value": _sz(text)})
            except RuntimeError as exc:
                raise SlateError(f"cannot set {where}\\{value} in {hive}: {exc}") from exc
            done.append(f"{where}\\{value} = {text}")
    if done:
        try:
            h.commit(None)
        except RuntimeError as exc:  # e.g. a read-only volume
            raise SlateError(f"cannot write the registry hive {hive}: {exc}") from exc
    return done, missing


def generalization_state(hive: Path) -> int | None:
    """Setup\\Status\\SysprepStatus\\GeneralizationState of a SYSTEM hive (7: generalized
    by sysprep), or None when the hive has no such value."""
    h = _open(hive, write=False)
    node = _child(h, h.root(), "Setup\\Status\\SysprepStatus")
    if node is None:
        return None
    try:
        value = h.node_get_value(node, "GeneralizationState")
        return int(h.value_dword(value))
    except RuntimeError:
        return None


def read_value(hive: Path, key: str, value: str) -> str | None:
    """A REG_SZ value of a hive, for logs and tests."""
    h = _open(hive, write=False)
    node = _child(h, h.root(), key)
    if node is None:
        return None
    try:
        return str(h.value_string(h.node_get_value(node, value)))
    except RuntimeError:
        return None
