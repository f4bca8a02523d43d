"""The IGMP querier's packets: pure, checksummed, and garbage is not a query."""

from __future__ import annotations

import socket
import struct

from appliance.roomcast.igmp import checksum, general_query, parse_query_source


def ip_packet(payload: bytes, source: str = "10.0.0.9", proto: int = 2) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x46, 0, 24 + len(payload), 0, 0, 1, proto, 0,
                       socket.inet_aton(source), socket.inet_aton("224.0.0.1"))  # fmt: skip
    return head + b"\x94\x04\x00\x00" + payload


def test_general_query_is_igmpv3_with_a_valid_checksum() -> None:
    q = general_query(10.0, 60.0)
    # type 0x11, max resp 100 (10 s), checksum, group 0.0.0.0, S=0 QRV=2, QQIC 60, 0 sources
    assert q == bytes.fromhex("1164") + q[2:4] + bytes.fromhex("00000000023c0000")
    assert checksum(q) == 0
    # ~(0x1164 + 0x023c) = ~0x13a0 = 0xec5f
    assert q[2:4] == bytes.fromhex("ec5f")


def test_a_v2_query_from_another_querier_is_recognised_too() -> None:
    v2 = bytes.fromhex("1164ee9b00000000")  # what an IGMPv2 switch sends
    assert parse_query_source(ip_packet(v2, "10.0.0.7")) == "10.0.0.7"


def test_another_queriers_query_is_recognised() -> None:
    assert parse_query_source(ip_packet(general_query())) == "10.0.0.9"


def test_reports_garbage_and_bad_checksums_are_not_queries() -> None:
    report = bytearray(general_query())
    report[0] = 0x22  # a v3 membership report
    report[2:4] = b"\0\0"
    report[2:4] = struct.pack("!H", checksum(bytes(report)))
    assert parse_query_source(ip_packet(bytes(report))) is None
    bad = bytearray(general_query())
    bad[2] ^= 0xFF
    assert parse_query_source(ip_packet(bytes(bad))) is None
    assert parse_query_source(ip_packet(general_query(), proto=17)) is None
    for junk in (b"", b"\x45", bytes(19), bytes(40), b"\x4f" + bytes(30)):
        assert parse_query_source(junk) is None
