"""Relayed requests (giaddr set): the reply goes to the relay's port 67, from the pool
of the relay's subnet; a relay from a subnet without a pool is refused (silence)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.lab.netns import IP, Netns
from tests.interop.test_dhcp_support import NETWORK, POOL, SERVER, SlateDhcp, lab_with_server, probe

RELAY_UPLINK = "10.77.0.254"  # the relay's address on the server's segment
RELAY_CLIENT_SIDE = "10.88.0.1"  # its address on the clients' segment = giaddr
MAC = "52:54:00:00:04:01"


@pytest.fixture
def relay_lab() -> Iterator[tuple[Netns, Netns]]:
    with lab_with_server() as (lab, srv):
        relay = lab.add_host("relay", f"{RELAY_UPLINK}/24")
        # One interface carries both sides: enough for the relay's UDP behaviour.
        relay.run([IP, "addr", "add", f"{RELAY_CLIENT_SIDE}/24", "dev", "eth0"])
        srv.run([IP, "route", "add", "10.88.0.0/24", "via", RELAY_UPLINK])
        yield srv, relay


def relayed(relay: Netns, giaddr: str, *extra: str) -> list[dict[str, object]]:
    return probe(relay, "--mac", MAC, "--giaddr", giaddr, "--to", SERVER, *extra)


def test_full_mode_answers_the_relay_from_its_subnets_pool(
    relay_lab: tuple[Netns, Netns], tmp_path: Path
) -> None:
    srv, relay = relay_lab
    home = tmp_path / "home"
    home.mkdir()
    server = SlateDhcp(srv, tmp_path / "slate.log", "--mode", "full", "--home", str(home),
                       "--network", NETWORK, "--pool", POOL,
                       "--pool", "10.88.0.50-10.88.0.60@10.88.0.0/24")  # fmt: skip
    try:
        replies = relayed(relay, RELAY_CLIENT_SIDE, "--arch", "0")
        assert len(replies) == 1, replies
        offer = replies[0]
        assert offer["type"] == "OFFER" and offer["source"] == SERVER and offer["sport"] == 67
        assert offer["giaddr"] == RELAY_CLIENT_SIDE
        assert str(offer["yiaddr"]).startswith("10.88.0.") and offer["file"] == "undionly.kpxe"
        assert offer["options"]["1"] == "255.255.255.0"  # type: ignore[index]
        ack = relayed(relay, RELAY_CLIENT_SIDE, "--type", "request",
                      "--requested", str(offer["yiaddr"]), "--server-id", SERVER)  # fmt: skip
        assert [(a["type"], a["yiaddr"]) for a in ack] == [("ACK", offer["yiaddr"])]
        # A relay for a subnet Slate has no pool for gets nothing.
        relay.run([IP, "addr", "add", "10.99.0.1/24", "dev", "eth0"])
        srv.run([IP, "route", "add", "10.99.0.0/24", "via", RELAY_UPLINK])
        assert relayed(relay, "10.99.0.1") == []
    finally:
        server.stop()
    assert "no pool for 52:54:00:00:04:01 (relay 10.99.0.1)" in server.log()


def test_proxy_mode_answers_the_relay(relay_lab: tuple[Netns, Netns], tmp_path: Path) -> None:
    srv, relay = relay_lab
    server = SlateDhcp(srv, tmp_path / "slate.log", "--mode", "proxy")
    try:
        replies = relayed(relay, RELAY_CLIENT_SIDE, "--arch", "9")
        assert len(replies) == 1, replies
        assert replies[0]["giaddr"] == RELAY_CLIENT_SIDE and replies[0]["yiaddr"] == "0.0.0.0"
        assert replies[0]["file"] == "snponly.efi"
        assert relayed(relay, RELAY_CLIENT_SIDE) == []  # not a PXE client: silent
    finally:
        server.stop()
