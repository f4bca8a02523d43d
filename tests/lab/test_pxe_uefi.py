"""A UEFI machine network-boots through `slate serve` in proxy mode beside dnsmasq.

dnsmasq (the "site's" DHCP server, in its own namespace) hands out addresses and knows
nothing about PXE; Slate answers only the boot part.  The path is OVMF's own PXE client
(option 93 = 7) → TFTP snponly.efi → iPXE → /boot/<mac>.ipxe → the job's kernel +
initramfs, whose /init prints the kernel command line on the serial console.  An
unknown machine booting at the same time is recorded in `seen` and left alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.conftest import PxeLab

MAC_JOB = "52:54:00:52:00:01"
MAC_UNKNOWN = "52:54:00:52:00:99"


def test_uefi_machine_boots_its_job_in_proxy_mode_beside_dnsmasq(pxe_lab: PxeLab) -> None:
    lab = pxe_lab
    site = lab.lab.add_host("site", "10.78.0.2/24")
    dnsmasq = site.popen(
        ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
         "--bind-interfaces", "--dhcp-range=10.78.0.50,10.78.0.99,1h", "--no-ping",
         f"--dhcp-leasefile={lab.tmp}/dnsmasq.leases", "--log-dhcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.procs.append(dnsmasq)
    lab.slate("host", "add", MAC_JOB, "--name", "uefi1")
    lab.slate("job", "capture", "--host", "uefi1", "--image", "lab-test")
    job_id = json.loads(lab.slate("job", "list", "--json"))[0]["id"]
    lab.serve("--dhcp", "proxy")

    machine = lab.machine("uefi1", "uefi", MAC_JOB, memory=512)
    stranger = lab.machine("stranger", "uefi", MAC_UNKNOWN, memory=256)
    machine.start()
    stranger.start()
    try:
        _wait_until_seen(lab, MAC_UNKNOWN, timeout=120)
        stranger.stop()
        console = machine.wait_for(lab.MARKER, timeout=240)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{lab.evidence()}") from exc
    line = next(x for x in console.splitlines() if lab.MARKER in x)
    assert f"slate.job={job_id}" in line
    assert re.search(r"slate\.token=[0-9a-f]{16,}", line)
    assert "initrd=initrd.img" in line  # Debian's EFI iPXE needs it (LAB-NOTES)
    log = lab.serve_proc.output() if lab.serve_proc else ""
    assert "snponly.efi" in log
    stranger_lines = _lines_of(log, MAC_UNKNOWN)
    assert "OFFER" not in stranger_lines and "ACK" not in stranger_lines  # proxy: silent
    # The address came from dnsmasq, the boot from Slate.
    leases = (lab.tmp / "dnsmasq.leases").read_text()
    assert MAC_JOB in leases


def _lines_of(log: str, mac: str) -> str:
    return "\n".join(x for x in log.splitlines() if mac in x)


def _wait_until_seen(lab: PxeLab, mac: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = json.loads(lab.slate("host", "seen", "--json"))
        if any(s["mac"] == mac for s in seen):
            return
        time.sleep(2)
    raise AssertionError(f"{mac} was never recorded in `slate host seen`")
