"""The IGMP querier's packets: pure, checksummed, and garbage is not a query."""

from __future__ import annotations

import socket
import struct

from appliance.roomcast.igmp import checksum, general_query, parse_query_source


def ip_packet(payload: bytes, source: str = "10.0.0.9", proto: int = 2) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x46, 0, 24 + len(payload), 0, 0, 1, proto, 0,
                       socket.inet_aton(source), socket.inet_aton("224.0.0.1"))  # fmt: skip
    return head + b"\x94\x04\x00\x00" + payload


def test_general_query_is_igmpv2_with_a_valid_checksum() -> None:
    q = general_query(10.0)
    assert q[0] == 0x11 and q[1] == 100 and q[4:] == bytes(4)
    assert checksum(q) == 0
    # 0x11 0x64, then ~(0x1164) = 0xee9b, then group 0.0.0.0
    assert q == bytes.fromhex("1164ee9b00000000")


def test_another_queriers_query_is_recognised() -> None:
    assert parse_query_source(ip_packet(general_query())) == "10.0.0.9"


def test_reports_garbage_and_bad_checksums_are_not_queries() -> None:
    report = bytearray(general_query())
    report[0] = 0x16  # a v2 membership report
    report[2:4] = b"\0\0"
    report[2:4] = struct.pack("!H", checksum(bytes(report)))
    assert parse_query_source(ip_packet(bytes(report))) is None
    bad = bytearray(general_query())
    bad[2] ^= 0xFF
    assert parse_query_source(ip_packet(bytes(bad))) is None
    assert parse_query_source(ip_packet(general_query(), proto=17)) is None
    for junk in (b"", b"\x45", bytes(19), bytes(40), b"\x4f" + bytes(30)):
        assert parse_query_source(junk) is None
