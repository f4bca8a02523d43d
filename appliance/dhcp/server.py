"""The DHCP service: sockets and the serve loop; every decision is in decide/leases.

``DhcpServer(interface, address, mode, boot_hook, pools=..., conn=...)`` listens on UDP
67 (and 4011 in proxy mode) of ``interface`` only (SO_BINDTODEVICE: it never hears or
answers another interface).  ``start()`` returns once the sockets are bound;
``stop()`` ends the serve thread.  ``handle()`` is the whole per-packet logic without
sockets, so tests can drive it directly.  Malformed packets and failing hooks are
logged and dropped; nothing a peer sends can end the loop.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address

from appliance.dhcp import decide
from appliance.dhcp import options as o
from appliance.dhcp.decide import BootTarget, ClientInfo
from appliance.dhcp.leases import LeaseBook, Pool
from appliance.dhcp.packet import BOOTREQUEST, Message, build, parse
from appliance.errors import SlateError, UsageError

log = logging.getLogger("slate.dhcp")
MODES = ("proxy", "full", "off")
BootHook = Callable[[ClientInfo], BootTarget | None]
Reply = tuple[bytes, tuple[str, int]]
DRAIN_BATCH = 64


class DhcpServer:
    def __init__(
        self,
        interface: str,
        address: IPv4Address | str,
        mode: str = "proxy",
        boot_hook: BootHook | None = None,
        *,
        pools: Sequence[Pool] = (),
        conn: sqlite3.Connection | None = None,
        ports: tuple[int, int] = (67, 4011),
        observe: Callable[[ClientInfo, Message], None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"unknown DHCP mode {mode!r}", hint="use proxy, full or off")
        if mode == "full" and (not pools or conn is None):
            raise UsageError(
                "full DHCP mode needs an address pool and the database",
                hint="give --pool FIRST-LAST (inside the interface's subnet)",
            )
        self.interface, self.address, self.mode = interface, IPv4Address(address), mode
        self.boot_hook = boot_hook or (lambda client: None)
        self.pools = tuple(pools)
        self.leases = (
            LeaseBook(conn, excluded=frozenset({self.address})) if conn is not None else None
        )
        self.ports = ports
        self.observe = observe  # told of every reply sent (the machines' timelines)
        self.stats: Counter[str] = Counter()
        self._socks: dict[int, socket.socket] = {}
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self.mode == "off":
            log.info("dhcp: off (the site's DHCP server points PXE clients at Slate)")
            return
        wanted = self.ports if self.mode == "proxy" else self.ports[:1]
        try:
            for port in wanted:
                self._socks[port] = _bound_socket(self.interface, port)
        except BaseException:
            self._close()
            raise
        self._wake = socket.socketpair()  # stop() writes a byte to end the select loop
        self._thread = threading.Thread(target=self._serve, name="slate-dhcp", daemon=True)
        self._thread.start()
        log.info(
            "dhcp: %s mode on %s (%s), ports %s",
            self.mode,
            self.interface,
            self.address,
            ",".join(map(str, wanted)),
        )

    def stop(self) -> None:
        if self._thread is not None and self._wake is not None:
            self._wake[1].send(b"x")
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def _close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        for end in self._wake or ():
            end.close()
        self._wake = None

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        assert self._wake is not None
        sel.register(self._wake[0], selectors.EVENT_READ, None)
        for port, sock in self._socks.items():
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, port)
        try:
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    self._drain(key.fileobj, key.data)  # type: ignore[arg-type]
        finally:
            sel.close()

    def _drain(self, sock: socket.socket, port: int) -> None:
        # A bounded batch: under a flood, stop() must still get its turn in select().
        for _ in range(DRAIN_BATCH):
            try:
                data, source = sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("dhcp: receive failed on %s: %s", self.interface, exc)
                return
            for payload, dest in self.handle(data, port, source):
                self._send(sock, payload, dest)

    def _send(self, sock: socket.socket, payload: bytes, dest: tuple[str, int]) -> None:
        try:
            sock.sendto(payload, dest)
            self.stats["sent"] += 1
        except OSError as exc:
            self.stats["send_errors"] += 1
            log.warning("dhcp: cannot send to %s:%s: %s", dest[0], dest[1], exc)

    # --- one packet -------------------------------------------------------------------

    def handle(self, data: bytes, port: int, source: tuple[str, int]) -> list[Reply]:
        """Replies to one received datagram (possibly none).  Never raises."""
        self.stats["received"] += 1
        try:
            req = parse(data)
            if req.op != BOOTREQUEST:
                return []
            client = decide.classify(req)
        except o.ParseError as exc:
            self.stats["malformed"] += 1
            log.info("dhcp: dropped a malformed packet from %s: %s", source[0], exc)
            return []
        try:
            reply, dest = self._decide(req, client, port, source)
        except Exception:  # a bug or a failing hook must not stop the service
            self.stats["errors"] += 1
            log.exception("dhcp: failed to handle a request from %s", client.mac)
            return []
        if reply is None:
            self.stats["silent"] += 1
            return []
        log.info(
            "dhcp: %s %s to %s (%s) via %s:%s",
            o.MESSAGE_TYPES.get(reply.message_type or 0, "?"),
            reply.yiaddr if reply.yiaddr != decide.ZERO else reply.file.decode("latin-1") or "-",
            client.mac,
            client.firmware or "no boot",
            dest[0],
            dest[1],
        )
        if self.observe is not None:
            try:
                self.observe(client, reply)
            except Exception:  # an observer must never cost a machine its answer
                log.exception("dhcp: observer failed for %s", client.mac)
        return [(build(reply), (str(dest[0]), dest[1]))]

    def _decide(
        self, req: Message, client: ClientInfo, port: int, source: tuple[str, int]
    ) -> tuple[Message | None, tuple[IPv4Address | str, int]]:
        reply = self._proxy(req, client, port) if self.mode == "proxy" else self._full(req, client)
        if reply is None:
            return None, ("", 0)
        reply = decide.finish(req, reply)
        if port != self.ports[0]:
            return reply, source  # port 4011: answer whoever asked, where they asked from
        return reply, decide.destination(req, reply)

    def _proxy(self, req: Message, client: ClientInfo, port: int) -> Message | None:
        if not client.is_pxe:
            log.debug("dhcp: not a network boot, leaving %s to the site's DHCP", client.mac)
            return None
        target = self._target(client)
        if target is None:
            return None
        role = 67 if port == self.ports[0] else 4011  # tests may use other port numbers
        reply = decide.proxy_reply(req, client, target, self.address, role)
        if reply is None and client.message_type in (o.DISCOVER, o.REQUEST):
            self._log_unbootable(client)
        return reply

    def _target(self, client: ClientInfo) -> BootTarget | None:
        if client.is_pxe and not client.firmware:
            log.info(
                "dhcp: %s boots an unsupported architecture %s; ignored", client.mac, client.arch
            )
            return None
        return self.boot_hook(client) if client.is_pxe else None

    def _log_unbootable(self, client: ClientInfo) -> None:
        if client.firmware == "uefi-http":
            log.info("dhcp: %s wants UEFI HTTP boot; no http_url configured", client.mac)

    def _full(self, req: Message, client: ClientInfo) -> Message | None:
        assert self.leases is not None
        pool = decide.choose_pool(self.pools, client, self.address)
        if pool is None:
            log.info("dhcp: no pool for %s (relay %s); ignored", client.mac, client.giaddr)
            return None
        kind, ip = self._lease_step(req, client, pool)
        if kind is None:
            return None
        target = self._target(client) if kind != o.NAK else None
        return decide.full_reply(req, client, kind, ip, pool, target, self.address)

    def _lease_step(
        self, req: Message, client: ClientInfo, pool: Pool
    ) -> tuple[int | None, IPv4Address | None]:
        """Apply the client's action to the lease book; the reply type and address."""
        assert self.leases is not None
        mt, mac = client.message_type, client.mac
        if mt == o.DISCOVER:
            ip = self.leases.offer(mac, pool, client.requested_ip)
            return (o.OFFER, ip) if ip is not None else (None, None)
        if mt == o.REQUEST:
            if client.server_id is not None and client.server_id != self.address:
                self.leases.forget_offer(mac)
                return None, None
            ciaddr = client.ciaddr if client.ciaddr != decide.ZERO else None
            verdict = self.leases.request(
                mac, pool, requested=client.requested_ip, ciaddr=ciaddr, hostname=client.hostname
            )
            if verdict.kind == "nak":
                log.info("dhcp: NAK to %s: %s", mac, verdict.reason)
            return {"ack": (o.ACK, verdict.ip), "nak": (o.NAK, None)}.get(
                verdict.kind, (None, None)
            )
        if mt == o.INFORM:
            return o.ACK, None
        if mt == o.RELEASE and client.server_id in (None, self.address):
            if self.leases.release(mac, client.ciaddr):
                log.info("dhcp: %s released %s", mac, client.ciaddr)
        elif mt == o.DECLINE and client.requested_ip is not None:
            log.warning("dhcp: %s declined %s (address in use?)", mac, client.requested_ip)
            self.leases.decline(mac, client.requested_ip)
        return None, None


def _bound_socket(interface: str, port: int) -> socket.socket:
    """A UDP socket on ``port`` that sees and sends on ``interface`` only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
        # Bound to one interface (SO_BINDTODEVICE above); DHCP broadcasts need INADDR_ANY.
        sock.bind(("0.0.0.0", port))  # noqa: S104
    except OSError as exc:
        sock.close()
        raise _socket_error(interface, port, exc) from exc
    return sock


def _socket_error(interface: str, port: int, exc: OSError) -> SlateError:
    if exc.errno == errno.ENODEV:
        return SlateError(
            f"network interface {interface!r} does not exist",
            hint="give --interface the name shown by `ip link` for the imaging network",
        )
    if exc.errno == errno.EADDRINUSE:
        return SlateError(
            f"UDP port {port} on {interface} is taken by another program",
            hint="stop the other DHCP server on this interface, or use --dhcp off",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SlateError(f"no permission to open UDP port {port}", hint="run Slate as root")
    return SlateError(f"cannot listen on UDP port {port} of {interface}: {exc}")
