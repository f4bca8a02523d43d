"""An IGMP querier of last resort, for the time a roomcast session is live.

A switch that snoops IGMP forwards a group only to ports that reported membership, and
forgets a member after its membership interval (~260 s) unless a *querier* on the VLAN
asks everyone to report again.  A VLAN with snooping but no querier therefore stops a
multicast stream after about four minutes.  Slate sends IGMPv2 general queries itself,
every :data:`QUERY_INTERVAL` seconds, only when it has not heard another querier's query
in the last :data:`OTHER_QUERIER` seconds (RFC 2236's rule, simplified: a querier the
site runs always wins).

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


def general_query(max_response: float = 10.0) -> bytes:
    """The IGMPv2 general query (type 0x11, group 0.0.0.0), checksummed."""
    code = max(1, min(255, int(max_response * 10)))
    body = struct.pack("!BBH4s", 0x11, code, 0, bytes(4))
    return struct.pack("!BBH4s", 0x11, code, checksum(body), bytes(4))


def parse_query_source(packet: bytes) -> str | None:
    """The source address of an IGMP membership query in a raw IPv4 packet, else None
    (anything else, or garbage)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl + 8 or packet[9] != socket.IPPROTO_IGMP:
        return None
    if packet[ihl] != 0x11 or checksum(packet[ihl : ihl + 8]) != 0:
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
        query = general_query(min(10.0, self.interval / 2))
        while not self._stop.is_set():
            if time.monotonic() >= self.other_until:
                with contextlib.suppress(OSError):
                    self._sock.sendto(query, (ALL_HOSTS, 0))
                    self.sent += 1
            self._stop.wait(self.interval)
