"""DHCP policy: classification, boot file per firmware, proxy and full replies."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from appliance.dhcp import options as o
from appliance.dhcp.craft import request
from appliance.dhcp.decide import (
    BootTarget,
    boot_file,
    choose_pool,
    classify,
    destination,
    full_reply,
    proxy_reply,
)
from appliance.dhcp.leases import Pool
from appliance.dhcp.packet import parse
from tests.unit.test_dhcp_codec import GOLDEN

MAC = "52:54:00:aa:bb:01"
SERVER = IPv4Address("10.0.0.1")
TARGET = BootTarget.for_http(SERVER, 8080, MAC, http_url="http://10.0.0.1:8080/ipxe.efi")


@pytest.mark.parametrize(
    ("arch", "ipxe", "firmware", "file", "vendor"),
    [
        (0, False, "bios", "undionly.kpxe", "PXEClient"),
        (7, False, "uefi", "snponly.efi", "PXEClient"),
        (9, False, "uefi", "snponly.efi", "PXEClient"),
        (16, False, "uefi-http", "http://10.0.0.1:8080/ipxe.efi", "HTTPClient"),
        (0, True, "ipxe", f"http://10.0.0.1:8080/boot/{MAC}.ipxe", "PXEClient"),
        (7, True, "ipxe", f"http://10.0.0.1:8080/boot/{MAC}.ipxe", "PXEClient"),
    ],
)
def test_boot_file_by_firmware(
    arch: int, ipxe: bool, firmware: str, file: str, vendor: str
) -> None:
    client = classify(request(MAC, o.DISCOVER, arch=arch, ipxe=ipxe))
    assert client.firmware == firmware
    assert boot_file(client, TARGET) == (file, vendor)


def test_unknown_arch_and_http_without_url_get_nothing() -> None:
    arm = classify(request(MAC, o.DISCOVER, arch=11))
    assert arm.is_pxe and arm.firmware == ""
    assert boot_file(arm, TARGET) is None
    http = classify(request(MAC, o.DISCOVER, arch=16))
    assert boot_file(http, BootTarget.for_http(SERVER, 8080, MAC)) is None


def test_efi_file_and_secure_boot_are_configurable() -> None:
    uefi = classify(request(MAC, o.DISCOVER, arch=7))
    assert boot_file(uefi, BootTarget("u", efi_file="ipxe.efi"))[0] == "ipxe.efi"  # type: ignore[index]
    assert boot_file(uefi, BootTarget("u", secure_boot=True))[0] == "shimx64.efi"  # type: ignore[index]


def test_old_pxe_rom_without_option_93_is_read_from_vendor_class() -> None:
    msg = request(MAC, o.DISCOVER)
    msg = msg.replace(options=(*msg.options, (o.VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003000")))
    assert classify(msg).arch == 7
    bare = request(MAC, o.DISCOVER)
    bare = bare.replace(options=(*bare.options, (o.VENDOR_CLASS, b"PXEClient")))
    assert classify(bare).firmware == "bios"


def test_proxy_offer_is_boot_info_only() -> None:
    req = request(MAC, o.DISCOVER, arch=0, uuid=b"U" * 16)
    reply = proxy_reply(req, classify(req), TARGET, SERVER, 67)
    assert reply is not None
    assert reply.message_type == o.OFFER and reply.yiaddr == IPv4Address(0)
    assert reply.file == b"undionly.kpxe" and reply.siaddr == SERVER
    assert reply.get(o.VENDOR_CLASS) == b"PXEClient"
    assert reply.get(o.CLIENT_UUID) == b"\x00" + b"U" * 16
    assert reply.get(o.VENDOR_SPECIFIC) == bytes((6, 1, 8, 255))
    assert reply.get(o.LEASE_TIME) is None and reply.xid == req.xid


def test_proxy_is_silent_for_non_pxe_no_target_and_foreign_requests() -> None:
    plain = request(MAC, o.DISCOVER)
    assert proxy_reply(plain, classify(plain), TARGET, SERVER, 67) is None
    pxe = request(MAC, o.DISCOVER, arch=0)
    assert proxy_reply(pxe, classify(pxe), None, SERVER, 67) is None
    other = request(MAC, o.REQUEST, arch=0, server_id="10.0.0.2", requested="10.0.0.50")
    assert proxy_reply(other, classify(other), TARGET, SERVER, 67) is None
    # A client selecting our address-less offer on port 67 must not be ACKed into 0.0.0.0.
    confused = request(MAC, o.REQUEST, arch=0, server_id=SERVER, requested="0.0.0.0")
    assert proxy_reply(confused, classify(confused), TARGET, SERVER, 67) is None


def test_proxy_ack_on_4011_for_ipxe() -> None:
    req = request(MAC, o.REQUEST, arch=0, ipxe=True, ciaddr="10.0.0.50")
    reply = proxy_reply(req, classify(req), TARGET, SERVER, 4011)
    assert reply is not None and reply.message_type == o.ACK
    assert reply.file == f"http://10.0.0.1:8080/boot/{MAC}.ipxe".encode()
    assert reply.ciaddr == IPv4Address("10.0.0.50")
    assert reply.get(o.VENDOR_SPECIFIC) is None  # iPXE needs no PXE menu control


def test_long_url_goes_to_option_67() -> None:
    url = "http://10.0.0.1:8080/" + "x" * 200
    req = request(MAC, o.DISCOVER, arch=16)
    reply = proxy_reply(req, classify(req), BootTarget("s", http_url=url), SERVER, 67)
    assert reply is not None and reply.file == b""
    assert reply.get(o.BOOTFILE_NAME) == url.encode()


POOL = Pool.parse("10.0.0.100-10.0.0.199", "10.0.0.0/24", router=IPv4Address("10.0.0.1"),
                  dns=(IPv4Address("10.0.0.1"),), domain="lab.test", lease_seconds=600)  # fmt: skip
RELAYED = Pool.parse("10.5.0.10-10.5.0.20", "10.5.0.0/24")


def test_full_offer_has_address_options_and_boot_info() -> None:
    req = request(MAC, o.DISCOVER, arch=7)
    reply = full_reply(req, classify(req), o.OFFER, IPv4Address("10.0.0.150"), POOL, TARGET, SERVER)
    assert reply.yiaddr == IPv4Address("10.0.0.150")
    assert reply.get(o.LEASE_TIME) == o.u32(600) and reply.get(o.RENEWAL_TIME) == o.u32(300)
    assert reply.get(o.SUBNET_MASK) == o.ip("255.255.255.0")
    assert reply.get(o.ROUTER) == o.ip("10.0.0.1") and reply.get(o.DOMAIN_NAME) == b"lab.test"
    assert reply.file == b"snponly.efi"


def test_full_inform_ack_has_no_lease_and_nak_is_bare() -> None:
    inform = request(MAC, o.INFORM, ciaddr="10.0.0.7")
    ack = full_reply(inform, classify(inform), o.ACK, None, POOL, None, SERVER)
    assert ack.get(o.LEASE_TIME) is None and ack.yiaddr == IPv4Address(0)
    assert ack.get(o.DNS_SERVERS) == o.ip("10.0.0.1")
    nak = full_reply(inform, classify(inform), o.NAK, None, POOL, TARGET, SERVER)
    assert nak.message_type == o.NAK and nak.file == b"" and nak.get(o.SUBNET_MASK) is None


def test_pool_choice_follows_giaddr() -> None:
    local = classify(request(MAC, o.DISCOVER))
    relayed = classify(request(MAC, o.DISCOVER, giaddr="10.5.0.1"))
    stranger = classify(request(MAC, o.DISCOVER, giaddr="192.168.9.1"))
    assert choose_pool([POOL, RELAYED], local, SERVER) is POOL
    assert choose_pool([POOL, RELAYED], relayed, SERVER) is RELAYED
    assert choose_pool([POOL, RELAYED], stranger, SERVER) is None
    renewing = classify(request(MAC, o.REQUEST, ciaddr="10.5.0.12"))  # unicast, no relay
    assert choose_pool([POOL, RELAYED], renewing, SERVER) is RELAYED


def test_destination_rules() -> None:
    relayed = request(MAC, o.DISCOVER, giaddr="10.5.0.1")
    offer = full_reply(relayed, classify(relayed), o.OFFER, IPv4Address("10.5.0.10"), RELAYED,
                       None, SERVER)  # fmt: skip
    assert destination(relayed, offer) == (IPv4Address("10.5.0.1"), 67)
    assert offer.giaddr == IPv4Address("10.5.0.1")
    renew = request(MAC, o.REQUEST, ciaddr="10.0.0.150")
    ack = full_reply(renew, classify(renew), o.ACK, IPv4Address("10.0.0.150"), POOL, None, SERVER)
    assert destination(renew, ack) == (IPv4Address("10.0.0.150"), 68)
    fresh = request(MAC, o.DISCOVER)
    assert destination(fresh, ack)[0] == IPv4Address("255.255.255.255")


def test_real_captures_get_the_right_boot_file() -> None:
    ipxe = classify(parse((GOLDEN / "ipxe-bios-discover.bin").read_bytes()))
    ovmf = classify(parse((GOLDEN / "ovmf-uefi-discover.bin").read_bytes()))
    target = BootTarget.for_http(SERVER, 80, ipxe.mac)
    assert boot_file(ipxe, target) == (f"http://10.0.0.1:80/boot/{ipxe.mac}.ipxe", "PXEClient")
    assert boot_file(ovmf, target) == ("snponly.efi", "PXEClient")
