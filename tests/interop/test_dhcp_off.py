"""off mode: the dnsmasq snippet of docs/dhcp.md, run by a real dnsmasq, sends BIOS,
UEFI and iPXE clients where Slate's own DHCP would (the doc cannot rot unnoticed)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.interop.test_dhcp_support import SERVER, kill, lab_with_server, probe

MAC = "52:54:00:00:05:01"


def doc_snippet() -> str:
    text = (ROOT / "docs" / "dhcp.md").read_text()
    found = re.search(r"# slate-begin dnsmasq\n(.*?)# slate-end", text, re.S)
    assert found, "docs/dhcp.md lost its dnsmasq snippet"
    return found.group(1).replace("10.0.0.5", SERVER)


def test_documented_dnsmasq_snippet_chains_to_slate(tmp_path: Path) -> None:
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(doc_snippet() + "dhcp-range=10.77.0.100,10.77.0.149,1h\nno-ping\n")
    log = tmp_path / "dnsmasq.log"
    with lab_with_server() as (lab, srv):
        site = srv.popen(
            ["dnsmasq", "--no-daemon", f"--conf-file={conf}", "--port=0", "--interface=eth0",
             "--bind-interfaces", "--log-dhcp", f"--dhcp-leasefile={tmp_path / 'leases'}",
             f"--pid-file={tmp_path / 'pid'}"],
            stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )  # fmt: skip
        try:
            while "sockets bound" not in log.read_text():
                assert site.poll() is None, log.read_text()
                time.sleep(0.1)
            client = lab.add_host("c", mac=MAC)

            def boot(*args: str) -> tuple[str, str]:
                replies = probe(client, "--mac", MAC, *args, wait=2)
                assert len(replies) == 1, replies
                r = replies[0]
                # dnsmasq answers a client that lists option 67 in option 67, not in `file`.
                opt67 = str(r["options"].get("67", "''"))[1:-1].replace("\\x00", "")  # type: ignore[attr-defined]
                return str(r["file"]) or opt67, str(r["siaddr"])

            assert boot("--arch", "0") == ("undionly.kpxe", SERVER)
            assert boot("--arch", "7") == ("snponly.efi", SERVER)
            assert boot("--arch", "9") == ("snponly.efi", SERVER)
            url = f"http://{SERVER}/boot/${{net0/mac}}.ipxe"
            assert boot("--arch", "7", "--ipxe")[0] == url
            assert boot("--arch", "0", "--ipxe")[0] == url
            assert boot("--arch", "11")[0] == ""
        finally:
            kill(site)
