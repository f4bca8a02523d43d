"""Roomcast's seat: the socket loop.  It joins the session's group, reads every datagram
on a thread of its own and hands it, with where it came from and the time, to the seat's
:class:`~bootimage.client.roomseat.Listener`; the frames that completes go to
``deliver``.  Nothing here decides anything."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable

from bootimage.client.roomseat import Listener

RCVBUF = 32 * 1024 * 1024
SO_RCVBUFFORCE = 33
# Receive offload: the kernel hands over up to 64 KiB of one flow's equal-sized datagrams
# in one read, their size in a control message (Linux 5.0+).  Datagrams that the
# appliance sent with UDP_SEGMENT then cross the stack as one packet instead of 40.
UDP_GRO = 104
GRO_CMSG = socket.CMSG_SPACE(4)


class Receiver:
    """The multicast socket and the thread that reads it."""

    def __init__(
        self,
        group: str,
        port: int,
        local: str,
        listener: Listener,
        deliver: Callable[[int, bytearray], None],
    ) -> None:
        self.listener, self.deliver = listener, deliver
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:  # not root: as much as the system allows
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((group, port))
        self._mreq = socket.inet_aton(group) + socket.inet_aton(local)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._mreq)
        # How long stop() may wait for the thread (a read is not woken by another thread).
        self.sock.settimeout(0.05)
        self.gro = os.environ.get("SLATE_NO_UDP_GRO", "") in ("", "0")  # a diagnostic switch
        if self.gro:
            try:
                self.sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
            except OSError:  # an older kernel: one datagram a read
                self.gro = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomcast-rx", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Leave the group (a snooping switch stops sending it here) and end the thread."""
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, self._mreq)
        self.sock.close()

    def _run(self) -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        recvmsg_into, feed, clock = self.sock.recvmsg_into, self.listener.feed, time.monotonic
        cmsg = GRO_CMSG if self.gro else 0
        while not self._stop.is_set():
            try:
                n, anc, _flags, addr = recvmsg_into([buf], cmsg)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            source, now = str(addr[0]), clock()
            size = (gro_size(anc) if self.gro else 0) or n or 1
            for off in range(0, max(n, 1), size):
                for k, frame in feed(view[off : min(n, off + size)], source, now):
                    self.deliver(k, frame)


def gro_size(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The size of each datagram in a coalesced read (the UDP_GRO control message), or
    0 when the read holds one datagram."""
    for level, kind, data in ancdata:
        if level == socket.SOL_UDP and kind == UDP_GRO and len(data) >= 2:
            size = int.from_bytes(data[:4] if len(data) >= 4 else data[:2], sys.byteorder)
            return size if 0 < size <= 65535 else 0
    return 0
