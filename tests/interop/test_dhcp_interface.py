"""The service hears and answers only on its configured interface (SO_BINDTODEVICE):
a PXE DISCOVER arriving on another interface of the same machine gets no answer."""

from __future__ import annotations

from pathlib import Path

from appliance.lab.netns import IP, Netns
from tests.interop.test_dhcp_support import SERVER, SlateDhcp, lab_with_server, probe

MAC = "52:54:00:00:07:01"


def test_requests_on_another_interface_are_never_answered(tmp_path: Path) -> None:
    with lab_with_server() as (lab, srv):
        # A second network on the server: srv eth1 <-> "other" eth0, not on the lab bridge.
        other = Netns(f"{lab.prefix}-other")
        lab.hosts["other"] = other  # removed by lab.close()
        srv.run([IP, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
                 "netns", other.name])  # fmt: skip
        srv.run([IP, "addr", "add", "10.66.0.1/24", "dev", "eth1"])
        srv.run([IP, "link", "set", "eth1", "up"])
        other.run([IP, "link", "set", "eth0", "up"])
        server = SlateDhcp(srv, tmp_path / "slate.log", "--mode", "proxy")
        try:
            on_lab = lab.add_host("c", mac=MAC)
            assert [r["source"] for r in probe(on_lab, "--mac", MAC, "--arch", "0")] == [SERVER]
            assert probe(other, "--mac", MAC, "--arch", "0") == []
            assert probe(other, "--mac", MAC, "--arch", "7", "--to", "10.66.0.1") == []
        finally:
            stats = server.stop()
    assert stats["received"] == 1 and stats["sent"] == 1  # it never even saw eth1's packets
