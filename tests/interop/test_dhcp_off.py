"""off mode: the snippets of docs/dhcp.md, run verbatim by real dnsmasq, ISC dhcpd and
Kea, send BIOS, UEFI and iPXE clients where Slate's own DHCP would (so the doc cannot
rot unnoticed).

ISC dhcpd and Kea are not installed system-wide (their packages would start DHCP
daemons on a host with systemd): the test unpacks their Debian packages with
``apt-get download`` + ``dpkg -x`` into ``$SLATE_TEST_CACHE/dhcp-servers`` once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from appliance.lab.netns import Netns
from tests.conftest import ROOT
from tests.interop.test_dhcp_support import SERVER, kill, lab_with_server, probe

MAC = "52:54:00:00:05:01"
CACHE = Path(os.environ.get("SLATE_TEST_CACHE", "/var/cache/slate-tests")) / "dhcp-servers"
URL = f"http://{SERVER}/boot/${{net0/mac}}.ipxe"


def doc_snippet(name: str) -> str:
    """A snippet of docs/dhcp.md with the doc's example network replaced by the lab's."""
    text = (ROOT / "docs" / "dhcp.md").read_text()
    found = re.search(rf"# slate-begin {name}\n.*?# slate-end\n", text, re.S)
    assert found, f"docs/dhcp.md lost its {name} snippet"
    return found.group(0).replace("10.0.0.5", SERVER).replace("10.0.0.", "10.77.0.")


def unpacked(package: str, binary: str) -> Path:
    """``binary`` from Debian's ``package``, unpacked (not installed) into the cache."""
    root = CACHE / package
    path = root / "usr" / "sbin" / binary
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=CACHE, check=True,
                       capture_output=True)  # fmt: skip
        deb = next(CACHE.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        deb.unlink()
    return path


def check_chain(client: Netns) -> None:
    """What every configuration must do: the table of docs/dhcp.md, off mode."""

    def boot(*args: str) -> tuple[str, str]:
        replies = [r for r in probe(client, "--mac", MAC, *args, wait=2) if r["type"] == "OFFER"]
        assert len(replies) == 1, replies
        r = replies[0]
        # Some servers answer a client that lists option 67 in option 67, not in `file`.
        opt67 = str(r["options"].get("67", "''"))[1:-1].replace("\\x00", "")  # type: ignore[attr-defined]
        return str(r["file"]) or opt67, str(r["siaddr"])

    assert boot("--arch", "0") == ("undionly.kpxe", SERVER)
    assert boot("--arch", "7") == ("snponly.efi", SERVER)
    assert boot("--arch", "9") == ("snponly.efi", SERVER)
    assert boot("--arch", "7", "--ipxe")[0] == URL
    assert boot("--arch", "0", "--ipxe")[0] == URL
    assert boot("--arch", "11")[0] == ""


def run_site_server(
    tmp: Path, cmd: list[str], ready: Callable[[str], bool], env: dict[str, str] | None = None
) -> None:
    log = tmp / "server.log"
    with lab_with_server() as (lab, srv):
        proc = srv.popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while not ready(log.read_text()):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            check_chain(lab.add_host("c", mac=MAC))
        finally:
            kill(proc)


def test_documented_dnsmasq_snippet_chains_to_slate(tmp_path: Path) -> None:
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(doc_snippet("dnsmasq") + "dhcp-range=10.77.0.100,10.77.0.149,1h\nno-ping\n")
    cmd = ["dnsmasq", "--no-daemon", f"--conf-file={conf}", "--port=0", "--interface=eth0",
           "--bind-interfaces", f"--dhcp-leasefile={tmp_path / 'leases'}",
           f"--pid-file={tmp_path / 'pid'}"]  # fmt: skip
    run_site_server(tmp_path, cmd, lambda log: "sockets bound" in log)


def test_documented_isc_dhcpd_snippet_chains_to_slate(tmp_path: Path) -> None:
    dhcpd = unpacked("isc-dhcp-server", "dhcpd")
    conf, leases = tmp_path / "dhcpd.conf", tmp_path / "dhcpd.leases"
    conf.write_text(doc_snippet("isc"))
    leases.touch()
    cmd = [str(dhcpd), "-4", "-f", "-d", "-cf", str(conf), "-lf", str(leases),
           "-pf", str(tmp_path / "dhcpd.pid"), "eth0"]  # fmt: skip
    run_site_server(tmp_path, cmd, lambda log: "Sending on   Socket/fallback" in log)


def test_documented_kea_snippet_chains_to_slate(tmp_path: Path) -> None:
    kea = unpacked("kea-dhcp4-server", "kea-dhcp4")
    classes = json.loads("{" + doc_snippet("kea").split("\n", 1)[1].rsplit("#", 1)[0] + "}")
    config = {"Dhcp4": {
        "interfaces-config": {"interfaces": ["eth0"]},
        "lease-database": {"type": "memfile", "persist": False},
        "subnet4": [{"id": 1, "subnet": "10.77.0.0/24",
                     "pools": [{"pool": "10.77.0.100 - 10.77.0.149"}]}],
        **classes,
        "loggers": [{"name": "kea-dhcp4", "severity": "INFO",
                     "output_options": [{"output": "stdout"}]}],
    }}  # fmt: skip
    conf = tmp_path / "kea-dhcp4.conf"
    conf.write_text(json.dumps(config))
    env = dict(os.environ, KEA_PIDFILE_DIR=str(tmp_path), KEA_LOCKFILE_DIR=str(tmp_path))
    ready = lambda log: "DHCP4_STARTED" in log  # noqa: E731
    run_site_server(tmp_path, [str(kea), "-c", str(conf)], ready, env)
