"""DHCP codec: golden captures of real clients, round trips, overload and long options."""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from appliance.dhcp import options as o
from appliance.dhcp.options import ParseError
from appliance.dhcp.packet import BOOTREQUEST, MAGIC, Message, build, parse
from tests.golden.dhcp.capture import UUID, render_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dhcp"
CAPTURES = sorted(GOLDEN.glob("*.bin"))
CLIENTS = ("dhclient", "udhcpc", "ipxe-bios", "ovmf-uefi")


def test_every_client_was_captured() -> None:
    names = {p.stem for p in CAPTURES}
    for client in CLIENTS:
        assert {f"{client}-discover", f"{client}-request"} <= names, client


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_capture_matches_golden_rendering(path: Path) -> None:
    text = render_golden(path.read_bytes())
    golden = path.with_suffix(".txt")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_capture_round_trips(path: Path) -> None:
    msg = parse(path.read_bytes())
    assert parse(build(msg)) == msg
    assert msg.op == BOOTREQUEST


def test_firmware_of_each_capture() -> None:
    seen = {p.stem: render_golden(p.read_bytes()) for p in CAPTURES}
    assert "firmware='ipxe'" in seen["ipxe-bios-discover"]
    assert "firmware='uefi' arch=7" in seen["ovmf-uefi-discover"]
    for name in ("ipxe-bios-discover", "ovmf-uefi-discover"):  # QEMU -uuid of capture.py
        assert f"uuid='{UUID}'" in seen[name], name
    assert "is_pxe=False" in seen["dhclient-discover"]
    assert "is_pxe=False" in seen["udhcpc-discover"]


def _msg(*opts: tuple[int, bytes], **kw: object) -> Message:
    return Message(op=BOOTREQUEST, xid=7, chaddr=bytes(range(16)), options=opts, **kw)  # type: ignore[arg-type]


def test_long_option_is_split_and_joined() -> None:
    long = bytes(range(256)) * 3  # 768 bytes: four instances on the wire
    msg = _msg((o.MESSAGE_TYPE, b"\x01"), (o.VENDOR_SPECIFIC, long))
    wire = build(msg)
    assert wire.count(bytes((o.VENDOR_SPECIFIC, 255))) >= 3
    assert parse(wire) == msg


def test_overloaded_file_and_sname_are_read_in_order() -> None:
    header = bytearray(build(_msg()))[:236]
    header[108:236] = bytes((12, 2)) + b"fi" + bytes((255,)) + bytes(123)  # file
    header[44:108] = bytes((12, 2)) + b"sn" + bytes((255,)) + bytes(59)  # sname
    wire = bytes(header) + MAGIC + bytes((52, 1, 3, 53, 1, 1, 12, 2)) + b"op" + b"\xff"
    msg = parse(wire)
    assert msg.get(o.HOSTNAME) == b"opfisn"  # options, then file, then sname (RFC 3396)
    assert msg.file == b"" and msg.sname == b""
    assert o.OVERLOAD not in dict(msg.options)
    assert parse(build(msg)) == msg


def test_missing_end_is_tolerated_and_pad_skipped() -> None:
    wire = build(_msg())[:236] + MAGIC + bytes((0, 0, 53, 1, 3))
    assert parse(wire).message_type == o.REQUEST


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x01" * 100,
        build(_msg())[:236] + b"\x00\x00\x00\x00",  # no magic cookie
        build(_msg())[:236] + MAGIC + bytes((53, 5, 1)),  # runs past the end
        build(_msg())[:236] + MAGIC + bytes((53,)),  # no length byte
        build(_msg())[:236] + MAGIC + bytes((52, 1, 9, 255)),  # bad overload value
        b"\x03" + build(_msg())[1:],  # unknown op
    ],
)
def test_malformed_packets_raise_parse_error(wire: bytes) -> None:
    with pytest.raises(ParseError):
        parse(wire)


def test_message_validates_itself() -> None:
    with pytest.raises(ValueError):
        _msg((53, b"\x01"), (53, b"\x02"))
    with pytest.raises(ValueError):
        Message(op=1, xid=1, chaddr=b"short")
    with pytest.raises(ValueError):
        _msg((o.OVERLOAD, b"\x01"))


def test_build_pads_to_bootp_minimum_and_keeps_addresses() -> None:
    msg = _msg((53, b"\x02"), giaddr=IPv4Address("10.1.2.3"), file=b"undionly.kpxe")
    wire = build(msg)
    assert len(wire) == 300
    assert parse(wire).giaddr == IPv4Address("10.1.2.3")
    assert parse(wire).file == b"undionly.kpxe"
