"""The boot NIC: the interface whose MAC iPXE passed (slate.mac), up with DHCP from
busybox udhcpc.  Retries until a lease arrives or the job's patience runs out."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from appliance.errors import NotFound, SlateError

SCRIPT = """#!/bin/sh
# udhcpc calls this with $1 = deconfig|bound|renew|leasefail and the lease in env vars.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast $broadcast} dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done ;;
esac
exit 0
"""


def interface_for(mac: str, sys_net: Path = Path("/sys/class/net")) -> str:
    want = mac.lower().replace("-", ":")
    for dev in sorted(sys_net.iterdir()):
        try:
            if (dev / "address").read_text().strip().lower() == want:
                return dev.name
        except OSError:
            continue
    raise NotFound(
        f"no network interface has MAC {mac}",
        hint="the NIC's driver may be missing from the boot environment; see the console",
    )


def bring_up(mac: str, log: Callable[[str], None], *, give_up_after: float = 600.0) -> str:
    """Configure the boot NIC with DHCP; returns its name."""
    deadline = time.monotonic() + give_up_after
    while True:  # the NIC may appear a little after udev settles
        try:
            iface = interface_for(mac)
            break
        except NotFound:
            if time.monotonic() > deadline - give_up_after + 30:
                raise
            time.sleep(1)
    script = Path("/run/slate-udhcpc.sh")
    script.write_text(SCRIPT)
    os.chmod(script, 0o755)  # noqa: S103 (udhcpc runs it; root owns it, in /run of the boot env)
    subprocess.run(["ip", "link", "set", iface, "up"], check=False)
    delay = 2.0
    while True:
        log(f"network: DHCP on {iface} ({mac})")
        proc = subprocess.run(
            [
                "busybox",
                "udhcpc",
                "-i",
                iface,
                "-f",
                "-q",
                "-n",
                "-t",
                "6",
                "-T",
                "2",
                "-s",
                str(script),
                "-x",
                "hostname:slate",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            addr = subprocess.run(
                ["ip", "-4", "-o", "addr", "show", iface],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            log(f"network: {iface} is up: {' '.join(addr.split()[3:4])}")
            return iface
        if time.monotonic() > deadline:
            raise SlateError(
                f"no DHCP answer on {iface} ({mac}) for {give_up_after:.0f} s",
                hint="check the cable and that DHCP serves this network",
            )
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
