"""Capture real DHCP clients' DISCOVER/REQUEST payloads as golden files (root).

    UPDATE_GOLDEN=1 .venv/bin/python tests/golden/dhcp/capture.py [client ...]

Clients: dhclient, udhcpc, ipxe-bios (QEMU, virtio-net iPXE ROM), ovmf-uefi (QEMU q35 +
OVMF PXE), ovmf-http (OVMF's UEFI HTTP boot: its PXE options off by fw_cfg).
Everything runs in namespaces created here: dnsmasq in ``srv`` answers so
that each client goes on from DISCOVER to REQUEST, and tcpdump records what arrives on
UDP port 67.  Writes ``<client>-<type>.bin`` (the UDP payload) and the matching ``.txt``
rendering (``render_golden``, also used by the tests) next to this file.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from appliance.dhcp import options as o  # noqa: E402
from appliance.dhcp.decide import classify  # noqa: E402
from appliance.dhcp.packet import parse, render  # noqa: E402
from appliance.lab.netns import Lab, Netns  # noqa: E402
from appliance.lab.qemu import HTTP_BOOT_ONLY  # noqa: E402

SERVER = "10.77.0.1"
MACS = {
    "dhclient": "02:00:00:00:00:11",
    "udhcpc": "02:00:00:00:00:12",
    "ipxe-bios": "52:54:00:00:00:13",
    "ovmf-uefi": "52:54:00:00:00:14",
    "ovmf-http": "52:54:00:00:00:15",
}
OVMF = Path("/usr/share/OVMF")
UUID = "12345678-9abc-def0-1122-334455667788"  # SMBIOS system UUID of the QEMU machines


def render_golden(data: bytes) -> str:
    """The golden text of one captured payload: the message and how the decision sees it."""
    msg = parse(data)
    c = classify(msg)
    return render(msg) + (
        f"classify: firmware={c.firmware!r} arch={c.arch} is_pxe={c.is_pxe} "
        f"is_ipxe={c.is_ipxe} uuid={c.uuid!r} user_class={c.user_class!r}\n"
    )


def read_pcap(path: Path) -> list[bytes]:
    """UDP payloads of an Ethernet pcap (IPv4 only, enough for what tcpdump wrote)."""
    data, out, i = path.read_bytes(), [], 24
    while i + 16 <= len(data):
        incl = struct.unpack_from("<I", data, i + 8)[0]
        frame = data[i + 16 : i + 16 + incl]
        i += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        out.append(frame[14 + ihl + 8 :])
    return out


def wanted(payloads: list[bytes], mac: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for p in payloads:
        msg = parse(p)
        kind = o.MESSAGE_TYPES.get(msg.message_type or 0, "")
        if msg.mac == mac and kind in ("DISCOVER", "REQUEST"):
            found.setdefault(kind.lower(), p)
    return found


def wait_for(pcap: Path, mac: str, deadline: float) -> dict[str, bytes]:
    while time.monotonic() < deadline:
        time.sleep(1)
        if pcap.exists():
            got = wanted(read_pcap(pcap), mac)
            if len(got) == 2:
                return got
    raise SystemExit(f"capture: no DISCOVER+REQUEST from {mac} in time")


def run_client(name: str, lab: Lab, tmp: Path) -> subprocess.Popen[bytes]:
    mac = MACS[name]
    if name in ("dhclient", "udhcpc"):
        ns = lab.add_host(name, mac=mac)
        if name == "dhclient":
            cmd = ["dhclient", "-d", "-1", "-sf", "/bin/true", "-lf", str(tmp / "dl.leases")]
            cmd += ["-pf", str(tmp / "dl.pid"), "eth0"]
        else:
            cmd = ["busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", "/bin/true"]
        return ns.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tap = lab.add_tap()
    nic = f"virtio-net-pci,netdev=n0,mac={mac}"
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-display", "none", "-uuid", UUID]
    cmd += ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]
    if name == "ipxe-bios":
        cmd += ["-boot", "n", "-device", nic]
    else:
        shutil.copy(OVMF / "OVMF_VARS_4M.fd", tmp / "vars.fd")
        cmd += ["-machine", "q35", "-device", nic + ",romfile=,bootindex=1"]
        cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF / 'OVMF_CODE_4M.fd'}"]
        cmd += ["-drive", f"if=pflash,format=raw,file={tmp / 'vars.fd'}"]
        if name == "ovmf-http":
            cmd += HTTP_BOOT_ONLY
    return lab.net.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def capture(name: str) -> None:
    with tempfile.TemporaryDirectory() as t, Lab() as lab:
        tmp = Path(t)
        srv: Netns = lab.add_host("srv", f"{SERVER}/24")
        dnsmasq = srv.popen(
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
             "--dhcp-range=10.77.0.100,10.77.0.199,1h", "--dhcp-boot=tag:!http,capture.bin",
             # UEFI HTTP boot requests only an offer that names a URL and HTTPClient.
             "--dhcp-vendorclass=set:http,HTTPClient", "--dhcp-option-force=tag:http,60,HTTPClient",
             f"--dhcp-boot=tag:http,http://{SERVER}/capture.efi",
             f"--dhcp-leasefile={tmp / 'leases'}", f"--pid-file={tmp / 'dnsmasq.pid'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        pcap = tmp / "c.pcap"
        dump = srv.popen(
            ["tcpdump", "-i", "eth0", "-U", "-s", "0", "-w", str(pcap), "udp dst port 67"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)
        client = run_client(name, lab, tmp)
        try:
            got = wait_for(pcap, MACS[name], time.monotonic() + 120)
        finally:
            for proc in (client, dump, dnsmasq):
                proc.terminate()
                proc.wait(timeout=10)
    for kind, payload in got.items():
        (HERE / f"{name}-{kind}.bin").write_bytes(payload)
        (HERE / f"{name}-{kind}.txt").write_text(render_golden(payload))
        print(f"captured {name}-{kind}.bin ({len(payload)} bytes)")


def main() -> None:
    if os.environ.get("UPDATE_GOLDEN") != "1":
        raise SystemExit("set UPDATE_GOLDEN=1 to overwrite the golden captures")
    for name in sys.argv[1:] or list(MACS):
        capture(name)


if __name__ == "__main__":
    main()
