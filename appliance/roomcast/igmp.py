"""An IGMP querier of last resort, for the time a roomcast session is live.

A switch that snoops IGMP forwards a group only to ports that reported membership, and
forgets a member after its membership interval (~260 s) unless a *querier* on the VLAN
asks everyone to report again.  A VLAN with snooping but no querier therefore stops a
multicast stream after about four minutes.  Slate sends IGMPv3 general queries itself,
every :data:`QUERY_INTERVAL` seconds, only when it has not heard another querier's query
in the last :data:`OTHER_QUERIER` seconds (RFC 3376's rule, simplified: a querier the
site runs always wins).

Version 3, not 2: a host that hears a v2 query answers in v2, and a v2 host that hears
another member's report for the same group keeps its own (RFC 2236 report suppression).
A switch that passes reports on to the other members (the Linux bridge does) then learns
only some of the seats, and forwards the group to those alone once it trusts its table —
measured: 9 of 16 seats lost the stream 10 s into a session.  v3 reports go to
224.0.0.22 and are never suppressed; a v2-only host reads a v3 query as a v2 one.

Packet code is pure (:func:`general_query`, :func:`parse_query_source`); the one raw
socket is :class:`Querier`'s.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

log = logging.getLogger("slate.roomcast")

QUERY_INTERVAL = 60.0  # s; below every switch's membership interval (~260 s)
OTHER_QUERIER = 255.0  # s without another's query before Slate asks
ALL_HOSTS = "224.0.0.1"
ROUTER_ALERT = b"\x94\x04\x00\x00"  # IP option RFC 2113: routers look at this packet


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def general_query(max_response: float = 10.0, interval: float = QUERY_INTERVAL) -> bytes:
    """The IGMPv3 general query (RFC 3376 4.1: type 0x11, group 0.0.0.0, robustness 2,
    the query interval, no sources), checksummed."""
    code = max(1, min(127, int(max_response * 10)))  # below 128: the value itself
    qqic = max(1, min(127, int(interval)))
    body = struct.pack("!BBH4sBBH", 0x11, code, 0, bytes(4), 2, qqic, 0)
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def parse_query_source(packet: bytes) -> str | None:
    """The source address of an IGMP membership query in a raw IPv4 packet, else None
    (anything else, or garbage)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    end = min(len(packet), struct.unpack_from("!H", packet, 2)[0])
    if ihl < 20 or end < ihl + 8 or packet[9] != socket.IPPROTO_IGMP:
        return None
    # The checksum covers the whole IGMP message: 8 bytes in v2, 12 or more in v3.
    if packet[ihl] != 0x11 or checksum(packet[ihl:end]) != 0:
        return None
    return socket.inet_ntoa(packet[12:16])


class Querier:
    """Listens for other queriers on ``address``'s interface and sends general queries
    while none is heard.  Needs root (a raw socket); without it, says so and does
    nothing."""

    def __init__(self, address: str, interval: float = QUERY_INTERVAL) -> None:
        self.address = address
        self.interval = interval
        self.other_until = 0.0  # monotonic time until which another querier counts
        self.sent = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.address)
            )
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, ROUTER_ALERT)
            sock.settimeout(0.5)
        except OSError as exc:
            log.warning("no IGMP querier (%s): the switch must have one for roomcast", exc)
            return
        self._sock = sock
        for target, name in ((self._listen, "igmp-listen"), (self._ask, "igmp-query")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    def _listen(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                packet = self._sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            source = parse_query_source(packet)
            if source is not None and source != self.address:
                if time.monotonic() >= self.other_until:
                    log.info("IGMP querier %s heard: Slate does not send queries", source)
                self.other_until = time.monotonic() + OTHER_QUERIER

    def _ask(self) -> None:
        assert self._sock is not None
        # Members answer within the max response time; it must end well before the
        # switch forgets them (a membership interval is ~2 query intervals).
        query = general_query(min(10.0, self.interval / 2), self.interval)
        while not self._stop.is_set():
            if time.monotonic() >= self.other_until:
                with contextlib.suppress(OSError):
                    self._sock.sendto(query, (ALL_HOSTS, 0))
                    self.sent += 1
            self._stop.wait(self.interval)
