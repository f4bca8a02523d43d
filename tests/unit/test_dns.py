"""DNS answers as pure functions of a query and the name table."""

from __future__ import annotations

import ipaddress

from dnslib import QTYPE, RCODE, DNSRecord

from appliance.dns import NameTable, Resolver, answer, reverse_ip

NET = ipaddress.IPv4Network("10.77.0.0/24")
TABLE = NameTable({"slate": "10.77.0.1", "pc1": "10.77.0.100"}, "slate.lan")


def ask(name: str, qtype: str = "A") -> DNSRecord | None:
    return answer(DNSRecord.question(name, qtype), TABLE, NET)


def test_a_records_for_own_and_leased_names() -> None:
    for name in ("pc1.slate.lan", "PC1.slate.lan.", "pc1"):
        reply = ask(name)
        assert reply is not None
        assert [str(r.rdata) for r in reply.rr] == ["10.77.0.100"]
        assert reply.header.aa == 1
    reply = ask("slate.slate.lan")
    assert reply is not None and str(reply.rr[0].rdata) == "10.77.0.1"


def test_unknown_names_in_our_domain_are_nxdomain_and_others_forwarded() -> None:
    reply = ask("nobody.slate.lan")
    assert reply is not None and reply.header.rcode == RCODE.NXDOMAIN
    assert ask("example.com") is None
    nodata = ask("pc1.slate.lan", "AAAA")
    assert nodata is not None and nodata.header.rcode == RCODE.NOERROR and not nodata.rr


def test_ptr_records() -> None:
    reply = ask("100.0.77.10.in-addr.arpa", "PTR")
    assert reply is not None and str(reply.rr[0].rdata) == "pc1.slate.lan."
    assert reply.rr[0].rtype == QTYPE.PTR
    missing = ask("99.0.77.10.in-addr.arpa", "PTR")
    assert missing is not None and missing.header.rcode == RCODE.NXDOMAIN
    assert ask("8.8.8.8.in-addr.arpa", "PTR") is None  # not our subnet: forward


def test_reverse_names() -> None:
    assert reverse_ip("4.3.2.1.in-addr.arpa.") == "1.2.3.4"
    assert reverse_ip("3.2.1.in-addr.arpa") is None
    assert reverse_ip("x.3.2.1.in-addr.arpa") is None


class _Handler:
    def __init__(self, ip: str) -> None:
        self.client_address = (ip, 5353)


def test_resolver_refuses_outsiders_and_unknown_names_without_upstream() -> None:
    resolver = Resolver(lambda: {"slate": "10.77.0.1"}, "slate.lan", NET)
    inside, outside = _Handler("10.77.0.9"), _Handler("192.0.2.1")
    q = DNSRecord.question("slate.slate.lan")
    assert str(resolver.resolve(q, inside).rr[0].rdata) == "10.77.0.1"
    assert resolver.resolve(q, outside).header.rcode == RCODE.REFUSED
    other = DNSRecord.question("example.com")
    assert resolver.resolve(other, inside).header.rcode == RCODE.REFUSED
