"""Address pools and leases for full mode: allocation, expiry, reservations, persistence.

One :class:`LeaseBook` owns the ``leases`` table (migration 0003) and an in-memory
index of it; offers live only in memory (a restart forgets them, clients retry).
Static reservations are the ``ip`` column of the inventory's ``hosts`` table: a
reserved address is only ever given to its host.  Clients are identified by MAC.

The request rules follow RFC 2131 §4.3.2; on an isolated imaging network Slate is
authoritative, so a request for an address that is free (e.g. after the lease file was
lost) is acknowledged rather than ignored.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from appliance.errors import UsageError
from appliance.machines.queries import mac_with_ip, reserved_ip

log = logging.getLogger("slate.dhcp")


@dataclass(frozen=True)
class Pool:
    """A dynamic range inside one subnet, with the options given to its clients."""

    start: IPv4Address
    end: IPv4Address
    network: IPv4Network
    router: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    domain: str = ""
    lease_seconds: int = 3600

    def __post_init__(self) -> None:
        if not (self.start in self.network and self.end in self.network and self.start <= self.end):
            raise UsageError(
                f"address pool {self.start}-{self.end} is not a range inside {self.network}",
                hint="give --pool as FIRST-LAST inside the interface's subnet",
            )

    @classmethod
    def parse(cls, text: str, network: IPv4Network | str, **kw: object) -> Pool:
        """``"10.0.0.100-10.0.0.199"`` inside ``network``."""
        try:
            first, last = (IPv4Address(p.strip()) for p in text.split("-"))
            net = IPv4Network(network, strict=False)
        except ValueError as exc:
            raise UsageError(
                f"cannot read address pool {text!r}: {exc}",
                hint="write it as FIRST-LAST, e.g. 10.0.0.100-10.0.0.199",
            ) from exc
        return cls(first, last, net, **kw)  # type: ignore[arg-type]

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, IPv4Address) and self.start <= ip <= self.end

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1


@dataclass
class Lease:
    ip: IPv4Address
    mac: str
    state: str  # offered | bound | released | declined
    expires: float
    hostname: str = ""


@dataclass(frozen=True)
class Verdict:
    """Answer to a REQUEST: ``ack`` (with ``ip``), ``nak``, or ``silent``."""

    kind: str
    ip: IPv4Address | None = None
    reason: str = ""


class LeaseBook:
    """Leases of all pools, persisted in the ``leases`` table of ``conn``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        offer_seconds: float = 30,
        decline_seconds: float = 600,
        clock: Callable[[], float] = time.time,
        excluded: frozenset[IPv4Address] = frozenset(),
    ) -> None:
        self.conn = conn
        self.excluded = excluded  # e.g. the server's own address, if inside a pool
        self.offer_seconds = offer_seconds
        self.decline_seconds = decline_seconds
        self.clock = clock
        self._by_ip: dict[IPv4Address, Lease] = {}
        self._by_mac: dict[str, IPv4Address] = {}
        self._cursor: dict[IPv4Address, int] = {}
        for row in conn.execute("SELECT ip, mac, state, expires, hostname FROM leases"):
            self._index(Lease(IPv4Address(row[0]), row[1], row[2], row[3], row[4]))

    # --- queries ----------------------------------------------------------------------

    def lease_of(self, mac: str) -> Lease | None:
        ip = self._by_mac.get(mac)
        return self._by_ip.get(ip) if ip is not None else None

    def active(self) -> list[Lease]:
        now = self.clock()
        return [le for le in self._by_ip.values() if le.state == "bound" and le.expires > now]

    def reservation(self, mac: str) -> IPv4Address | None:
        ip = reserved_ip(self.conn, mac)
        return _ip_or_none(ip) if ip is not None else None

    def _reserved_for_other(self, ip: IPv4Address, mac: str) -> bool:
        other = mac_with_ip(self.conn, str(ip))
        return other is not None and other != mac

    def _free_for(self, ip: IPv4Address, mac: str) -> bool:
        if ip in self.excluded:
            return False
        lease = self._by_ip.get(ip)
        held = lease is not None and lease.expires > self.clock()
        if held and lease is not None and (lease.mac != mac or lease.state == "declined"):
            return False
        return not self._reserved_for_other(ip, mac)

    # --- the four client actions -------------------------------------------------------

    def offer(self, mac: str, pool: Pool, requested: IPv4Address | None) -> IPv4Address | None:
        """Choose an address for a DISCOVER and hold it briefly; None if the pool is full."""
        ip = self._choose(mac, pool, requested)
        if ip is None:
            log.warning(
                "dhcp: pool %s-%s is exhausted; %s gets no offer", pool.start, pool.end, mac
            )
            return None
        current = self._by_ip.get(ip)
        if current is None or current.mac != mac or current.state != "bound":
            self._put(Lease(ip, mac, "offered", self.clock() + self.offer_seconds), persist=False)
        return ip

    def request(
        self,
        mac: str,
        pool: Pool,
        *,
        requested: IPv4Address | None,
        ciaddr: IPv4Address | None,
        hostname: str = "",
    ) -> Verdict:
        """A REQUEST aimed at us (SELECTING, INIT-REBOOT, RENEWING or REBINDING)."""
        wanted = requested or ciaddr
        if wanted is None:
            return Verdict("silent", reason="request names no address")
        if wanted not in pool.network:
            return Verdict("nak", reason=f"{wanted} is not on {pool.network}")
        reserved = self.reservation(mac)
        if reserved is not None and reserved != wanted:
            return Verdict("nak", reason=f"{mac} has the reservation {reserved}")
        own = self._by_mac.get(mac) == wanted
        if not own and (
            (reserved is None and wanted not in pool) or not self._free_for(wanted, mac)
        ):
            return Verdict("nak", reason=f"{wanted} is not available to {mac}")
        lease = Lease(wanted, mac, "bound", self.clock() + pool.lease_seconds, hostname)
        self._put(lease, persist=True)
        return Verdict("ack", wanted)

    def forget_offer(self, mac: str) -> None:
        """The client chose another server: release what we offered it."""
        lease = self.lease_of(mac)
        if lease is not None and lease.state == "offered":
            self._drop(lease)

    def release(self, mac: str, ip: IPv4Address) -> bool:
        lease = self._by_ip.get(ip)
        if lease is None or lease.mac != mac or lease.state != "bound":
            return False
        lease.state, lease.expires = "released", self.clock()
        self._save(lease)
        return True

    def decline(self, mac: str, ip: IPv4Address) -> None:
        """The client found ``ip`` in use (ARP): quarantine it, whoever held it."""
        current = self._by_ip.get(ip)
        if current is not None and current.mac != mac and current.state == "bound":
            return  # a DECLINE for someone else's bound lease is spoofed or stale
        self._put(Lease(ip, mac, "declined", self.clock() + self.decline_seconds), persist=True)
        self._by_mac.pop(mac, None)  # the decliner must get a different address next time

    # --- allocation and storage ----------------------------------------------------------

    def _choose(self, mac: str, pool: Pool, requested: IPv4Address | None) -> IPv4Address | None:
        reserved = self.reservation(mac)
        if reserved is not None:
            if reserved in pool.network and self._free_for(reserved, mac):
                return reserved
            log.warning(
                "dhcp: reservation %s of %s is unusable (in use or off-subnet)", reserved, mac
            )
            return None
        own = self.lease_of(mac)
        if own is not None and own.ip in pool and own.state != "declined":
            return own.ip
        if requested is not None and requested in pool and self._free_for(requested, mac):
            return requested
        return self._scan(mac, pool)

    def _scan(self, mac: str, pool: Pool) -> IPv4Address | None:
        """Never-used addresses first (a cursor walks the range), then the longest expired."""
        start = self._cursor.get(pool.start, 0)
        for k in range(pool.size):
            i = (start + k) % pool.size
            ip = pool.start + i
            if (
                ip not in self._by_ip
                and ip not in self.excluded
                and not self._reserved_for_other(ip, mac)
            ):
                self._cursor[pool.start] = i + 1
                return ip
        now = self.clock()
        expired = [le for le in self._by_ip.values() if le.ip in pool and le.expires <= now]
        for lease in sorted(expired, key=lambda le: le.expires):
            if lease.ip not in self.excluded and not self._reserved_for_other(lease.ip, mac):
                return lease.ip
        return None

    def _put(self, lease: Lease, *, persist: bool) -> None:
        old = self.lease_of(lease.mac)
        if old is not None and old.ip != lease.ip and old.state != "declined":
            self._drop(old)
        previous = self._by_ip.get(lease.ip)
        if previous is not None and previous.mac != lease.mac:
            self._by_mac.pop(previous.mac, None)
        self._index(lease)
        if persist:
            self._save(lease)

    def _index(self, lease: Lease) -> None:
        self._by_ip[lease.ip] = lease
        if lease.state != "declined":
            self._by_mac[lease.mac] = lease.ip

    def _drop(self, lease: Lease) -> None:
        self._by_ip.pop(lease.ip, None)
        if self._by_mac.get(lease.mac) == lease.ip:
            del self._by_mac[lease.mac]
        if lease.state != "offered":
            self.conn.execute("DELETE FROM leases WHERE ip = ?", (str(lease.ip),))

    def _save(self, lease: Lease) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO leases(ip, mac, state, expires, hostname, updated_at)"
            " VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
            (str(lease.ip), lease.mac, lease.state, lease.expires, lease.hostname),
        )


# --- the reads others need: plain functions over a connection ----------------------------
# Every SQL statement on ``leases`` lives in this module: the DNS names, the timeline's
# "which machine is this address" and the ROM chainload read the table through these.


def bound_mac(conn: sqlite3.Connection, ip: str) -> str | None:
    """The MAC of the bound lease on ``ip`` (the newest, if more), or None."""
    row = conn.execute(
        "SELECT mac FROM leases WHERE ip=? AND state='bound' ORDER BY expires DESC", (ip,)
    ).fetchone()
    return str(row[0]) if row else None


def bound_ip(conn: sqlite3.Connection, mac: str) -> str | None:
    """The address of ``mac``'s bound lease (the newest, if more), or None."""
    row = conn.execute(
        "SELECT ip FROM leases WHERE mac=? AND state='bound' ORDER BY expires DESC", (mac,)
    ).fetchone()
    return str(row[0]) if row else None


def bound_at(conn: sqlite3.Connection, now: float) -> list[tuple[str, str, str]]:
    """(MAC, the client's host name, address) of every lease bound and unexpired at
    ``now`` (unix time)."""
    rows = conn.execute(
        "SELECT mac, hostname, ip FROM leases WHERE state='bound' AND expires > ?", (now,)
    ).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _ip_or_none(text: str) -> IPv4Address | None:
    try:
        return IPv4Address(text)
    except ValueError:
        log.warning("dhcp: ignoring malformed reserved address %r in the inventory", text)
        return None
