"""A tiny IPv6 router-advertisement sender for lab links.

iPXE waits about 16 s for IPv6 autoconfiguration unless a router advertisement arrives
(LAB-NOTES).  An RA with no flags, no prefix and router lifetime 0 tells it "no IPv6
configuration here" and ends the wait, without making anyone a default router.  Run it
inside the server namespace::

    python -m appliance.lab.ra eth0
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading

ALL_NODES = "ff02::1"
ND_ROUTER_ADVERT = 134


def router_advertisement() -> bytes:
    """ICMPv6 RA: hop limit 64, no M/O flags, lifetime 0, no options (checksum by kernel)."""
    return struct.pack("!BBHBBHII", ND_ROUTER_ADVERT, 0, 0, 64, 0, 0, 0, 0)


class RaSender:
    """Sends :func:`router_advertisement` on ``interface`` every ``interval`` seconds."""

    def __init__(self, interface: str, interval: float = 1.0) -> None:
        self.interface = interface
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
        index = socket.if_nametoindex(self.interface)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        # RFC 4861: receivers drop an RA whose hop limit is not 255.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        return sock

    def run(self) -> None:
        packet = router_advertisement()
        with self._socket() as sock:
            index = socket.if_nametoindex(self.interface)
            while not self._stop.is_set():
                # OSError: link-local address still tentative (DAD); try again shortly.
                with contextlib.suppress(OSError):
                    sock.sendto(packet, (ALL_NODES, 0, 0, index))
                self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="ra", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m appliance.lab.ra INTERFACE", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        RaSender(args[0]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
