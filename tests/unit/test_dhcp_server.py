"""The server's per-packet logic (``DhcpServer.handle``) without sockets."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from appliance import db
from appliance.dhcp import options as o
from appliance.dhcp.craft import request
from appliance.dhcp.decide import BootTarget, ClientInfo
from appliance.dhcp.leases import Pool
from appliance.dhcp.packet import Message, build, parse
from appliance.dhcp.server import DhcpServer
from appliance.errors import UsageError

MAC = "52:54:00:00:00:31"
LOCAL = Pool.parse("10.0.0.100-10.0.0.110", "10.0.0.0/24", router=IPv4Address("10.0.0.1"))
REMOTE = Pool.parse("10.5.0.10-10.5.0.20", "10.5.0.0/24")


def hook(client: ClientInfo) -> BootTarget | None:
    return BootTarget.for_http("10.0.0.1", 8080, client.mac) if client.mac == MAC else None


def full(tmp_path: Path) -> DhcpServer:
    conn = db.connect(tmp_path / "slate.db")
    return DhcpServer("eth0", "10.0.0.1", "full", hook, pools=[LOCAL, REMOTE], conn=conn)


def one(server: DhcpServer, msg: Message, port: int = 67) -> tuple[Message, tuple[str, int]]:
    replies = server.handle(build(msg), port, ("0.0.0.0", 68))
    assert len(replies) == 1, replies
    return parse(replies[0][0]), replies[0][1]


def none(server: DhcpServer, msg: Message | bytes, port: int = 67) -> None:
    data = msg if isinstance(msg, bytes) else build(msg)
    assert server.handle(data, port, ("0.0.0.0", 68)) == []


def test_full_dora_renew_release(tmp_path: Path) -> None:
    server = full(tmp_path)
    offer, dest = one(server, request(MAC, o.DISCOVER, arch=0))
    assert offer.message_type == o.OFFER and dest == ("255.255.255.255", 68)
    assert offer.file == b"undionly.kpxe" and offer.yiaddr in LOCAL
    ack, _ = one(server, request(MAC, o.REQUEST, requested=offer.yiaddr, server_id="10.0.0.1"))
    assert ack.message_type == o.ACK and ack.yiaddr == offer.yiaddr
    renew, dest = one(server, request(MAC, o.REQUEST, ciaddr=offer.yiaddr))
    assert renew.message_type == o.ACK and dest == (str(offer.yiaddr), 68)
    none(server, request(MAC, o.RELEASE, ciaddr=offer.yiaddr, server_id="10.0.0.1"))
    lease = server.leases.lease_of(MAC) if server.leases else None
    assert lease is not None and lease.state == "released"


def test_full_gives_unknown_machines_an_address_without_boot_info(tmp_path: Path) -> None:
    server = full(tmp_path)
    offer, _ = one(server, request("02:00:00:00:00:99", o.DISCOVER, arch=7))
    assert offer.yiaddr in LOCAL and offer.file == b"" and offer.get(o.VENDOR_CLASS) is None
    arm, _ = one(server, request(MAC, o.DISCOVER, arch=11, xid=2))
    assert arm.yiaddr in LOCAL and arm.file == b""  # unknown arch: address, no boot file


def test_full_request_for_another_server_forgets_our_offer(tmp_path: Path) -> None:
    server = full(tmp_path)
    offer, _ = one(server, request(MAC, o.DISCOVER))
    none(server, request(MAC, o.REQUEST, requested=offer.yiaddr, server_id="10.0.0.2"))
    assert server.leases is not None and server.leases.lease_of(MAC) is None


def test_full_nak_and_inform(tmp_path: Path) -> None:
    server = full(tmp_path)
    nak, dest = one(server, request(MAC, o.REQUEST, requested="192.168.1.5"))
    assert nak.message_type == o.NAK and dest == ("255.255.255.255", 68)
    ack, dest = one(server, request(MAC, o.INFORM, ciaddr="10.0.0.50"))
    assert ack.get(o.LEASE_TIME) is None and ack.get(o.ROUTER) == o.ip("10.0.0.1")
    assert dest == ("10.0.0.50", 68)


def test_relayed_requests_use_the_relays_pool_and_go_to_the_relay(tmp_path: Path) -> None:
    server = full(tmp_path)
    offer, dest = one(server, request(MAC, o.DISCOVER, giaddr="10.5.0.1"))
    assert offer.yiaddr in REMOTE and dest == ("10.5.0.1", 67)
    assert offer.giaddr == IPv4Address("10.5.0.1")
    none(server, request(MAC, o.DISCOVER, giaddr="172.16.0.1"))  # no pool there


def test_decline_quarantines(tmp_path: Path) -> None:
    server = full(tmp_path)
    offer, _ = one(server, request(MAC, o.DISCOVER))
    none(server, request(MAC, o.DECLINE, requested=offer.yiaddr, server_id="10.0.0.1"))
    again, _ = one(server, request(MAC, o.DISCOVER, xid=3))
    assert again.yiaddr != offer.yiaddr


def test_proxy_answers_pxe_only_and_never_leases() -> None:
    server = DhcpServer("eth0", "10.0.0.1", "proxy", hook)
    offer, dest = one(server, request(MAC, o.DISCOVER, arch=7))
    assert offer.yiaddr == IPv4Address(0) and offer.file == b"snponly.efi"
    assert dest == ("255.255.255.255", 68)
    none(server, request(MAC, o.DISCOVER))  # not PXE
    none(server, request("02:00:00:00:00:98", o.DISCOVER, arch=0))  # hook: None
    none(server, request(MAC, o.REQUEST, arch=0, requested="10.0.0.9", server_id="10.0.0.2"))
    ipxe = request(MAC, o.REQUEST, arch=0, ipxe=True, ciaddr="10.0.0.9")
    replies = server.handle(build(ipxe), 4011, ("10.0.0.9", 4011))
    ack = parse(replies[0][0])
    assert replies[0][1] == ("10.0.0.9", 4011) and ack.message_type == o.ACK
    assert ack.file == f"http://10.0.0.1:8080/boot/{MAC}.ipxe".encode()
    relayed, dest = one(server, request(MAC, o.DISCOVER, arch=0, giaddr="10.5.0.1"))
    assert dest == ("10.5.0.1", 67) and relayed.file == b"undionly.kpxe"


def test_malformed_packets_and_failing_hooks_are_dropped() -> None:
    def broken(client: ClientInfo) -> BootTarget | None:
        raise RuntimeError("inventory down")

    server = DhcpServer("eth0", "10.0.0.1", "proxy", broken)
    none(server, b"\x01garbage")
    none(server, request(MAC, o.DISCOVER, arch=0))
    none(server, build(request(MAC, o.DISCOVER)).replace(b"\x01", b"\x02", 1))  # a BOOTREPLY
    assert server.stats["malformed"] == 1 and server.stats["errors"] == 1


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        DhcpServer("eth0", "10.0.0.1", "relay")
    with pytest.raises(UsageError):
        DhcpServer("eth0", "10.0.0.1", "full")
    DhcpServer("eth0", "10.0.0.1", "off").start()  # off: no sockets, nothing to stop


def test_relay_agent_information_is_echoed(tmp_path: Path) -> None:
    server = full(tmp_path)
    req = request(MAC, o.DISCOVER, giaddr="10.5.0.1")
    agent = bytes((1, 4)) + b"port"  # sub-option 1: circuit id
    offer, _ = one(server, req.replace(options=(*req.options, (o.RELAY_AGENT_INFO, agent))))
    assert offer.options[-1] == (o.RELAY_AGENT_INFO, agent)
