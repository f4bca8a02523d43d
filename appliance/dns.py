"""DNS for the imaging network (full DHCP mode only), on dnslib.

Answers A and PTR for the appliance's own name and for the machines it leased to (names
from the inventory, addresses from leases and reservations).  Other names are forwarded
to a configured upstream server, or refused when there is none.  Never an open
resolver: the socket is bound to the served address only, and queries whose source is
outside the served subnet get REFUSED.  Malformed queries are dropped and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dnslib import PTR, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, DNSServer

log = logging.getLogger("slate.dns")

TTL = 60
NameSource = Callable[[], Mapping[str, str]]  # fqdn (lower case, no dot) -> IPv4


class NameTable:
    """Forward and reverse maps of the names we are authoritative for."""

    def __init__(self, names: Mapping[str, str], domain: str) -> None:
        self.domain = domain.strip(".").lower()
        self.forward = {self._fqdn(n): ip for n, ip in names.items()}
        self.reverse = {ip: n for n, ip in sorted(self.forward.items(), reverse=True)}

    def _fqdn(self, name: str) -> str:
        name = name.strip(".").lower()
        return name if name.endswith("." + self.domain) else f"{name}.{self.domain}"

    def ours(self, qname: str) -> bool:
        """Names inside our domain (or bare host names): we answer, never forward."""
        qname = qname.strip(".").lower()
        return qname == self.domain or qname.endswith("." + self.domain) or "." not in qname

    def lookup(self, qname: str) -> str | None:
        return self.forward.get(self._fqdn(qname))


def reverse_ip(qname: str) -> str | None:
    """``4.3.2.1.in-addr.arpa`` -> ``1.2.3.4`` (None for anything else)."""
    labels = qname.strip(".").lower().split(".")
    if len(labels) != 6 or labels[-2:] != ["in-addr", "arpa"]:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
    except ValueError:
        return None


def answer(
    request: DNSRecord, table: NameTable, network: ipaddress.IPv4Network
) -> DNSRecord | None:
    """Our reply to ``request``, or None when it is not ours to answer (forward it)."""
    reply = request.reply()  # sets QR, AA, RD/RA echo
    q = request.q
    qname = str(q.qname)
    ip = reverse_ip(qname)
    if q.qtype == QTYPE.PTR and ip is not None:
        name = table.reverse.get(ip)
        if name:
            reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(name + "."), ttl=TTL))
            return reply
        if ipaddress.IPv4Address(ip) in network:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        return None
    if ip is not None or not table.ours(qname):
        return None
    found = table.lookup(qname)
    if found is None:
        reply.header.rcode = RCODE.NXDOMAIN
    elif q.qtype in (QTYPE.A, QTYPE.ANY):
        reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(found), ttl=TTL))
    # Other types for a name we know: NOERROR with no answer (NODATA).
    return reply


class Resolver:
    """dnslib resolver: our names, then the upstream, else REFUSED."""

    def __init__(
        self,
        names: NameSource,
        domain: str,
        network: ipaddress.IPv4Network,
        upstream: str = "",
        upstream_port: int = 53,
    ) -> None:
        self.names = names
        self.domain = domain
        self.network = network
        self.upstream = upstream
        self.upstream_port = upstream_port
        self._table: NameTable | None = None
        self._table_at = 0.0
        self._lock = threading.Lock()

    def table(self) -> NameTable:
        # Leases change while serving; re-read the names at most once a second.
        with self._lock:
            now = time.monotonic()
            if self._table is None or now - self._table_at > 1.0:
                self._table = NameTable(self.names(), self.domain)
                self._table_at = now
            return self._table

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        client = handler.client_address[0]
        if ipaddress.IPv4Address(client) not in self.network:
            log.warning(
                "refused query for %s from %s (outside %s)", request.q.qname, client, self.network
            )
            return _rcode(request, RCODE.REFUSED)
        try:
            reply = answer(request, self.table(), self.network)
        except Exception:
            log.exception("lookup of %s failed", request.q.qname)
            return _rcode(request, RCODE.SERVFAIL)
        if reply is not None:
            return reply
        if not self.upstream:
            return _rcode(request, RCODE.REFUSED)
        return self._forward(request)

    def _forward(self, request: DNSRecord) -> DNSRecord:
        try:
            data = request.send(self.upstream, self.upstream_port, timeout=3)
            return DNSRecord.parse(data)
        except Exception as exc:  # socket.timeout, OSError, DNSError
            log.warning("upstream %s failed for %s: %s", self.upstream, request.q.qname, exc)
            return _rcode(request, RCODE.SERVFAIL)


def _rcode(request: DNSRecord, rcode: int) -> DNSRecord:
    reply = request.reply()
    reply.header.rcode = rcode
    reply.header.aa = 0
    return reply


class _Logger(DNSLogger):
    """dnslib's hooks, into our logger: decoding errors only (queries are too many)."""

    def __init__(self) -> None:
        super().__init__("error", prefix=False)

    def log_error(self, handler: DNSHandler, e: object) -> None:
        log.warning("dropped malformed query from %s: %s", handler.client_address[0], e)


class _ThreadingUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    # Forwarding may wait on the upstream: do not hold up the other queries.
    daemon_threads = True
    allow_reuse_address = True


class DnsServer:
    """The DNS service bound to ``address:port``."""

    def __init__(self, resolver: Resolver, address: str, port: int = 53) -> None:
        self.resolver = resolver
        self.address = address
        self.port = port
        self._server: DNSServer | None = None

    def start(self) -> None:
        self._server = DNSServer(
            self.resolver, self.address, self.port, logger=_Logger(), server=_ThreadingUdp
        )
        self.port = self._server.server.server_address[1]
        self._server.start_thread()
        log.info("answering for %s on %s:%d", self.resolver.domain, self.address, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()
            self._server = None
