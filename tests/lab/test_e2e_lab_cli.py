"""`slate lab up|status|down`: a lab left running for exploring the console, with the
console on the host's loopback and every boot service inside the lab's namespaces;
`down` stops exactly what `up` started."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

from appliance.lab import harness
from tests.conftest import require_root


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host_udp_ports() -> str:
    return subprocess.run(["ss", "-Hlun"], capture_output=True, text=True).stdout


def test_lab_up_status_down(slate, home: Path) -> None:
    require_root()
    port = _free_port()
    up = slate("lab", "up", "--bios", "1", "--uefi", "0", "--no-image", "--port", str(port),
               "--json")  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout)
        assert state["console"] == f"http://127.0.0.1:{port}/"
        # The console answers on the host's loopback (through the forwarder) ...
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as resp:
            assert resp.status == 200
        # ... while DHCP and TFTP listen only inside the lab.
        host_ports = _host_udp_ports()
        assert ":67 " not in host_ports and ":69 " not in host_ports, host_ports
        ns = state["namespaces"][-1]
        inside = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlun"],
                                capture_output=True, text=True).stdout  # fmt: skip
        assert ":67 " in inside and ":69 " in inside, inside
        # The machine is a known host and network-boots from the lab's appliance.
        hosts = slate("host", "list", "--json", check=True).stdout
        assert "lab-bios1" in hosts
        serial = Path(state["workdir"]) / "lab-bios1.serial.log"
        deadline = time.monotonic() + 180
        while "iPXE" not in serial.read_text(errors="replace"):
            assert time.monotonic() < deadline, serial.read_text(errors="replace")[-2000:]
            time.sleep(1)
        status = slate("lab", "status", "--json", check=True)
        procs = {p["role"]: p for p in json.loads(status.stdout)["procs"]}
        assert {"serve", "ra", "forward", "qemu:lab-bios1"} <= set(procs)
        assert all(p["alive"] for p in procs.values())
    finally:
        down = slate("lab", "down")
    assert down.returncode == 0, down.stderr
    for p in procs.values():
        assert not harness.Proc(p["role"], p["pid"], p["started"]).alive()
    for name in state["namespaces"]:
        assert not Path(f"/run/netns/{name}").exists()
    assert slate("lab", "status").returncode == 1
