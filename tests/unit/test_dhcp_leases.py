"""Lease book: allocation, request rules, reservations, release/decline, persistence."""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from appliance import db
from appliance.dhcp.leases import LeaseBook, Pool
from appliance.errors import UsageError
from appliance.machines import Inventory

POOL = Pool.parse("10.0.0.100-10.0.0.103", "10.0.0.0/24", lease_seconds=100)
A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.connect(tmp_path / "slate.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def book(conn: sqlite3.Connection, clock: Clock) -> LeaseBook:
    return LeaseBook(conn, clock=clock, excluded=frozenset({IPv4Address("10.0.0.101")}))


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def test_dora_binds_and_same_mac_gets_same_address(conn: sqlite3.Connection, clock: Clock) -> None:
    lb = book(conn, clock)
    offered = lb.offer(A, POOL, None)
    assert offered == ip("10.0.0.100")
    assert lb.request(A, POOL, requested=offered, ciaddr=None).kind == "ack"
    assert lb.offer(A, POOL, None) == offered
    assert lb.offer(B, POOL, None) == ip("10.0.0.102")  # .101 is excluded (the server)


def test_requests_of_other_clients_addresses_are_refused(
    conn: sqlite3.Connection, clock: Clock
) -> None:
    lb = book(conn, clock)
    lb.request(A, POOL, requested=ip("10.0.0.100"), ciaddr=None)
    assert lb.request(B, POOL, requested=ip("10.0.0.100"), ciaddr=None).kind == "nak"
    assert lb.request(B, POOL, requested=ip("10.9.9.9"), ciaddr=None).kind == "nak"
    assert lb.request(B, POOL, requested=ip("10.0.0.50"), ciaddr=None).kind == "nak"  # not pool
    assert lb.request(B, POOL, requested=None, ciaddr=None).kind == "silent"
    renew = lb.request(A, POOL, requested=None, ciaddr=ip("10.0.0.100"))
    assert renew.kind == "ack" and renew.ip == ip("10.0.0.100")


def test_leases_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    lb = book(db.connect(tmp_path / "slate.db"), clock)
    lb.request(A, POOL, requested=ip("10.0.0.103"), ciaddr=None, hostname="pc-a")
    again = book(db.connect(tmp_path / "slate.db"), clock)
    lease = again.lease_of(A)
    assert lease is not None and lease.ip == ip("10.0.0.103") and lease.hostname == "pc-a"
    assert again.offer(B, POOL, ip("10.0.0.103")) != ip("10.0.0.103")
    assert again.offer(A, POOL, None) == ip("10.0.0.103")


def test_pool_exhaustion_then_expiry_frees_addresses(
    conn: sqlite3.Connection, clock: Clock
) -> None:
    lb = book(conn, clock)
    for n, mac in enumerate((A, B, C)):
        got = lb.offer(mac, POOL, None)
        assert got is not None, n
        assert lb.request(mac, POOL, requested=got, ciaddr=None).kind == "ack"
    assert lb.offer("02:00:00:00:00:0d", POOL, None) is None
    clock.now += 101
    assert lb.offer("02:00:00:00:00:0d", POOL, None) is not None


def test_offers_are_not_persisted_and_expire(tmp_path: Path, clock: Clock) -> None:
    conn = db.connect(tmp_path / "slate.db")
    lb = book(conn, clock)
    lb.offer(A, POOL, None)
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert lb.offer(B, POOL, ip("10.0.0.100")) != ip("10.0.0.100")
    clock.now += 31
    assert lb.offer(C, POOL, ip("10.0.0.100")) == ip("10.0.0.100")


def test_release_and_decline(conn: sqlite3.Connection, clock: Clock) -> None:
    lb = book(conn, clock)
    lb.request(A, POOL, requested=ip("10.0.0.100"), ciaddr=None)
    assert not lb.release(B, ip("10.0.0.100"))  # not B's lease
    assert lb.release(A, ip("10.0.0.100"))
    state = conn.execute("SELECT state FROM leases WHERE ip='10.0.0.100'").fetchone()[0]
    assert state == "released"
    lb.decline(B, ip("10.0.0.102"))
    assert lb.offer(B, POOL, ip("10.0.0.102")) != ip("10.0.0.102")
    assert lb.request(C, POOL, requested=ip("10.0.0.102"), ciaddr=None).kind == "nak"
    clock.now += 601
    assert lb.request(C, POOL, requested=ip("10.0.0.102"), ciaddr=None).kind == "ack"


def test_reservations_from_the_inventory(conn: sqlite3.Connection, clock: Clock) -> None:
    inventory = Inventory(conn)
    inventory.add_host(C, "pc-c", actor="test", ip="10.0.0.20")
    inventory.add_host(B, "pc-b", actor="test", ip="10.0.0.100")
    lb = book(conn, clock)
    assert lb.offer(C, POOL, None) == ip("10.0.0.20")  # outside the range, inside the subnet
    assert lb.request(C, POOL, requested=ip("10.0.0.20"), ciaddr=None).kind == "ack"
    assert lb.request(C, POOL, requested=ip("10.0.0.103"), ciaddr=None).kind == "nak"
    assert lb.offer(A, POOL, ip("10.0.0.100")) == ip("10.0.0.102")  # .100 is B's, .101 ours
    assert lb.request(A, POOL, requested=ip("10.0.0.100"), ciaddr=None).kind == "nak"


def test_pool_validation() -> None:
    with pytest.raises(UsageError):
        Pool.parse("10.0.0.200-10.0.0.100", "10.0.0.0/24")
    with pytest.raises(UsageError):
        Pool.parse("10.0.1.1-10.0.1.9", "10.0.0.0/24")
    with pytest.raises(UsageError):
        Pool.parse("nonsense", "10.0.0.0/24")
    assert Pool.parse("10.0.0.1 - 10.0.0.10", "10.0.0.0/24").size == 10
