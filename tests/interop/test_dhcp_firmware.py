"""Real firmware accepts Slate's proxyDHCP answers (QEMU, TCG), beside a site dnsmasq:

* OVMF UEFI PXE takes its address from dnsmasq and `snponly.efi` from Slate, fetches it
  by TFTP, and the iPXE inside then fetches `/boot/<mac>.ipxe` over HTTP;
* the iPXE ROM of a BIOS virtio-net NIC goes straight to `/boot/<mac>.ipxe`.

The TFTP server is dnsmasq's (TFTP only) and the HTTP server Python's http.server, so
this tests the DHCP part alone; the whole product chain is the lab tier's business.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from appliance.lab.netns import Lab, Netns
from tests.interop.test_dhcp_support import SERVER, SlateDhcp, kill, lab_with_server

SITE = "10.77.0.2"
OVMF = Path("/usr/share/OVMF")
BUDGET = 180  # seconds of TCG emulation allowed per machine


def start_services(lab: Lab, srv: Netns, tmp: Path, mac: str) -> list[subprocess.Popen[str]]:
    site = lab.add_host("site", f"{SITE}/24")
    www = tmp / "www"
    (www / "boot").mkdir(parents=True)
    (www / "boot" / f"{mac}.ipxe").write_text("#!ipxe\necho slate-test-script\nsleep 600\n")
    procs = [
        site.popen(
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--no-ping",
             "--interface=eth0", "--bind-interfaces", "--dhcp-range=10.77.0.100,10.77.0.149,1h",
             f"--dhcp-leasefile={tmp / 'site.leases'}", f"--pid-file={tmp / 'site.pid'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        ),
        srv.popen(
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--enable-tftp",
             "--tftp-root=/usr/lib/ipxe", "--interface=eth0", "--bind-interfaces",
             f"--pid-file={tmp / 'tftp.pid'}"],
            stdout=subprocess.DEVNULL, stderr=(tmp / "tftp.log").open("w"), text=True,
        ),
        srv.popen(
            [sys.executable, "-m", "http.server", "8080", "--bind", SERVER, "--directory",
             str(www)],
            stdout=subprocess.DEVNULL, stderr=(tmp / "http.log").open("w"), text=True,
        ),
    ]  # fmt: skip
    return procs


def run_machine(lab: Lab, tmp: Path, mac: str, uefi: bool) -> subprocess.Popen[str]:
    tap = lab.add_tap()
    nic = f"virtio-net-pci,netdev=n0,mac={mac}"
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-display", "none",
           "-serial", f"file:{tmp / 'serial.log'}",
           "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]  # fmt: skip
    if uefi:
        shutil.copy(OVMF / "OVMF_VARS_4M.fd", tmp / "vars.fd")
        cmd += ["-machine", "q35", "-device", nic + ",romfile=,bootindex=1"]
        cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF / 'OVMF_CODE_4M.fd'}"]
        cmd += ["-drive", f"if=pflash,format=raw,file={tmp / 'vars.fd'}"]
    else:
        cmd += ["-boot", "n", "-device", nic]
    return lab.net.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def wait_for_script_fetch(tmp: Path, mac: str, machine: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline:
        log = (tmp / "http.log").read_text()
        # iPXE percent-encodes the colons of the MAC in the path.
        if f"GET /boot/{mac}.ipxe" in log or f"GET /boot/{quote(mac, safe='')}.ipxe" in log:
            return
        assert machine.poll() is None, "QEMU exited early"
        time.sleep(1)
    raise AssertionError(
        f"no boot script fetch within {BUDGET} s\nslate:\n{(tmp / 'slate.log').read_text()}"
        f"\ntftp:\n{(tmp / 'tftp.log').read_text()}"
    )


def boot(tmp: Path, mac: str, uefi: bool) -> str:
    with lab_with_server() as (lab, srv):
        procs = start_services(lab, srv, tmp, mac)
        slate = SlateDhcp(srv, tmp / "slate.log", "--mode", "proxy", "--only-mac", mac)
        machine = run_machine(lab, tmp, mac, uefi)
        try:
            wait_for_script_fetch(tmp, mac, machine)
        finally:
            kill(machine)
            for proc in procs:
                kill(proc)
            slate.stop()
    return slate.log()


def test_ovmf_uefi_pxe_chains_to_ipxe_and_its_script(tmp_path: Path) -> None:
    mac = "52:54:00:00:06:01"
    log = boot(tmp_path, mac, uefi=True)
    assert f"OFFER snponly.efi to {mac} (uefi)" in log
    assert "snponly.efi" in (tmp_path / "tftp.log").read_text()
    assert f"http://{SERVER}:8080/boot/{mac}.ipxe to {mac} (ipxe)" in log


def test_bios_ipxe_rom_fetches_its_script(tmp_path: Path) -> None:
    mac = "52:54:00:00:06:02"
    log = boot(tmp_path, mac, uefi=False)
    assert f"http://{SERVER}:8080/boot/{mac}.ipxe to {mac} (ipxe)" in log
