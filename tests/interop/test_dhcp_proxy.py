"""Proxy mode beside a real site DHCP server (dnsmasq in its own namespace): a PXE
client gets its address from dnsmasq and its boot file from Slate; a plain client
(ISC dhclient) and a PXE machine Slate has nothing for are left entirely to dnsmasq."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.lab.netns import IP, Lab, Netns
from tests.interop.test_dhcp_support import (
    DHCLIENT_SCRIPT,
    SERVER,
    SlateDhcp,
    kill,
    lab_with_server,
    probe,
    script,
    stop_pid,
)

SITE = "10.77.0.2"
PXE_MAC = "52:54:00:00:03:01"
UNKNOWN_MAC = "52:54:00:00:03:02"
PLAIN_MAC = "02:00:00:00:03:03"


class Site:
    def __init__(self, lab: Lab, srv: Netns, tmp: Path) -> None:
        self.lab, self.srv, self.tmp = lab, srv, tmp
        self.ns = lab.add_host("site", f"{SITE}/24")
        # --no-ping: dnsmasq would otherwise ping each new address for 3 s before offering.
        self.dnsmasq = self.ns.popen(
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
             "--interface=eth0", "--bind-interfaces", "--dhcp-authoritative", "--no-ping",
             "--dhcp-range=10.77.0.100,10.77.0.149,1h", f"--dhcp-leasefile={tmp / 'site.leases'}",
             f"--pid-file={tmp / 'dnsmasq.pid'}", "--log-dhcp"],
            stdout=subprocess.DEVNULL, stderr=(tmp / "dnsmasq.log").open("w"),
        )  # fmt: skip
        self.slate = SlateDhcp(srv, tmp / "slate.log", "--mode", "proxy", "--only-mac", PXE_MAC)

    def close(self) -> dict[str, int]:
        kill(self.dnsmasq)
        return self.slate.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with lab_with_server() as (lab, srv):
        s = Site(lab, srv, tmp_path)
        try:
            yield s
        finally:
            s.close()


def by_source(replies: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {r["source"]: r for r in replies}


def test_pxe_client_gets_address_from_site_and_boot_file_from_slate(site: Site) -> None:
    client = site.lab.add_host("pxe", mac=PXE_MAC)
    offers = by_source(probe(client, "--mac", PXE_MAC, "--arch", "0"))
    assert set(offers) == {SITE, SERVER}, offers
    site_offer, slate_offer = offers[SITE], offers[SERVER]
    assert str(site_offer["yiaddr"]).startswith("10.77.0.1")
    assert slate_offer["yiaddr"] == "0.0.0.0" and slate_offer["file"] == "undionly.kpxe"
    assert slate_offer["siaddr"] == SERVER
    assert slate_offer["options"]["60"] == "'PXEClient'"  # type: ignore[index]
    ip = str(site_offer["yiaddr"])
    # The client takes the site's address; Slate stays out of that REQUEST.
    acks = probe(client, "--mac", PXE_MAC, "--arch", "0", "--type", "request",
                 "--requested", ip, "--server-id", SITE)  # fmt: skip
    assert [(a["source"], a["type"]) for a in acks] == [(SITE, "ACK")]
    # Then, as iPXE does, it asks Slate on port 4011 for its boot file.
    client.run([IP, "addr", "add", f"{ip}/24", "dev", "eth0"])
    boot = probe(client, "--mac", PXE_MAC, "--arch", "0", "--ipxe", "--type", "request",
                 "--ciaddr", ip, "--to", SERVER, "--port", "4011")  # fmt: skip
    assert len(boot) == 1 and boot[0]["type"] == "ACK" and boot[0]["sport"] == 4011
    assert boot[0]["file"] == f"http://{SERVER}:8080/boot/{PXE_MAC}.ipxe"
    uefi = by_source(probe(client, "--mac", PXE_MAC, "--arch", "7", "--ipxe"))
    assert uefi[SERVER]["file"] == f"http://{SERVER}:8080/boot/{PXE_MAC}.ipxe"


def test_slate_is_silent_for_machines_it_has_nothing_for(site: Site) -> None:
    unknown = site.lab.add_host("unknown", mac=UNKNOWN_MAC)
    offers = probe(unknown, "--mac", UNKNOWN_MAC, "--arch", "7")
    assert [o["source"] for o in offers] == [SITE]
    arm = probe(unknown, "--mac", PXE_MAC, "--arch", "11")  # known MAC, unknown arch
    assert [o["source"] for o in arm] == [SITE]
    stats = site.close()
    assert stats["received"] >= 2 and stats.get("sent", 0) == 0
    assert "unsupported architecture 11" in site.slate.log()


def test_plain_dhclient_is_left_to_the_site_server(site: Site, tmp_path: Path) -> None:
    plain = site.lab.add_host("plain", mac=PLAIN_MAC)
    log = tmp_path / "dhclient.log"
    run = script(tmp_path / "dhclient-script", DHCLIENT_SCRIPT, log)
    cmd = ["dhclient", "-4", "-1", "-sf", str(run), "-lf", str(tmp_path / "l")]
    cmd += ["-pf", str(tmp_path / "d.pid"), "eth0"]
    try:
        plain.run(cmd, timeout=60)
    finally:
        stop_pid(tmp_path / "d.pid")
    assert "BOUND 10.77.0.1" in log.read_text()
    stats = site.close()
    assert stats["received"] >= 2, "Slate should have heard the DISCOVER and REQUEST"
    assert stats.get("sent", 0) == 0
    assert "OFFER" not in site.slate.log() and "ACK" not in site.slate.log()
