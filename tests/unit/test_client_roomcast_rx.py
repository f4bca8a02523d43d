"""The seat's receive offload: a coalesced read's datagram size from its control message,
and a real UDP_GRO socket on loopback handing over what was sent, datagram for datagram."""

from __future__ import annotations

import socket
import struct

import pytest

from bootimage.client.roomrx import UDP_GRO, gro_size

UDP_SEGMENT = 103


def test_gro_size_reads_the_control_message() -> None:
    four = struct.pack("=i", 1468)
    assert gro_size([(socket.SOL_UDP, UDP_GRO, four)]) == 1468
    assert gro_size([(socket.SOL_UDP, UDP_GRO, struct.pack("=H", 1200))]) == 1200
    assert gro_size([]) == 0  # one datagram in the read
    assert gro_size([(socket.SOL_IP, UDP_GRO, four)]) == 0  # another level's message
    assert gro_size([(socket.SOL_UDP, UDP_GRO, b"\x01")]) == 0  # truncated
    assert gro_size([(socket.SOL_UDP, UDP_GRO, struct.pack("=i", 0))]) == 0
    assert gro_size([(socket.SOL_UDP, UDP_GRO, struct.pack("=i", 70000))]) == 0


def test_a_gro_socket_gets_every_segment_of_a_gso_send() -> None:
    """The kernel keeps a UDP_SEGMENT send whole up to a UDP_GRO socket: one read, and
    the control message says where each datagram ends (the last may be shorter)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            rx.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
            tx.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1000)
        except OSError as exc:  # pragma: no cover - every kernel CI runs has both
            pytest.fail(f"this kernel has no UDP GSO/GRO: {exc}")
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        datagrams = [bytes([i]) * 1000 for i in range(7)] + [b"end" * 100]
        tx.sendto(b"".join(datagrams), rx.getsockname())
        got: list[bytes] = []
        buf = bytearray(65536)
        while len(got) < len(datagrams):
            n, anc, _flags, _addr = rx.recvmsg_into([buf], socket.CMSG_SPACE(4))
            size = gro_size(anc) or n
            got += [bytes(buf[o : min(n, o + size)]) for o in range(0, n, size)]
        assert got == datagrams
    finally:
        rx.close()
        tx.close()
