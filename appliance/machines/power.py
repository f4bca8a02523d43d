"""Wake-on-LAN: a real magic packet (6 bytes 0xff, then the MAC 16 times) over UDP.

The target is a setting, ``ADDRESS[:PORT]``: the console's ``SLATE_WOL_TARGET`` config,
else the environment variable ``SLATE_WOL_TARGET``, else ``settings.wol_target`` (the
flag ``--wol-target``); without one, the broadcast address of the interface the
appliance serves (``settings.interface``), port 9.  A test sets it to a loopback address
or a namespace's address to receive the packet.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from appliance.errors import UsageError
from appliance.machines.inventory import normalize_mac
from appliance.settings import Settings

DEFAULT_PORT = 9


def magic_packet(mac: str) -> bytes:
    return b"\xff" * 6 + bytes.fromhex(normalize_mac(mac).replace(":", "")) * 16


def interface_broadcast(interface: str) -> str:
    """The IPv4 broadcast address of ``interface`` (from ``ip -j addr``)."""
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
        check=False,
    )
    for link in json.loads(out.stdout or "[]"):
        for addr in link.get("addr_info", []):
            if addr.get("broadcast"):
                return str(addr["broadcast"])
            if "local" in addr and "prefixlen" in addr:
                net = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network
                return str(net.broadcast_address)
    raise UsageError(
        f"interface {interface!r} has no IPv4 address to send Wake-on-LAN from",
        hint="set the console's Wake-on-LAN target (SLATE_WOL_TARGET=ADDRESS[:PORT])",
    )


def target(config: Mapping[str, Any], settings: Settings | None) -> tuple[str, int]:
    configured = str(
        config.get("SLATE_WOL_TARGET")
        or os.environ.get("SLATE_WOL_TARGET")  # a process without settings (the console's tests)
        or (settings.wol_target if settings is not None else "")
    )
    if configured:
        host, _, port = configured.rpartition(":") if ":" in configured else (configured, "", "")
        return host, int(port or DEFAULT_PORT)
    if settings is not None and settings.interface:
        return interface_broadcast(settings.interface), DEFAULT_PORT
    return "255.255.255.255", DEFAULT_PORT


def wake(macs: list[str], address: str, port: int) -> int:
    """Send one magic packet per MAC; returns how many were sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for mac in macs:
            sock.sendto(magic_packet(mac), (address, port))
    return len(macs)


def waker(settings: Settings | None) -> Callable[[Sequence[str]], int]:
    """``wake(macs)`` with the target of ``settings`` (the appliance's own sender)."""

    def send(macs: Sequence[str]) -> int:
        address, port = target({}, settings)
        return wake(list(macs), address, port)

    return send
