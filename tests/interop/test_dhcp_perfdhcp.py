"""A short perfdhcp run (Kea's load generator) against full mode: every 4-way exchange
completes, nothing is dropped or malformed.  No timing assertion (see bench/)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.interop.test_dhcp_support import SERVER, SlateDhcp, lab_with_server

EXCHANGES = 400


def test_perfdhcp_completes_every_exchange(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with lab_with_server() as (lab, srv):
        client = lab.add_host("perf", "10.77.0.60/24")
        server = SlateDhcp(srv, tmp_path / "slate.log", "--mode", "full", "--home", str(home),
                           "--network", "10.77.0.0/16", "--pool", "10.77.1.0-10.77.8.255",
                           "--log-level", "WARNING")  # fmt: skip
        try:
            # perfdhcp acts as a relay (giaddr = its address); -W waits 2 s for late replies.
            out = client.run(
                ["perfdhcp", "-4", "-l", "eth0", "-r", "100", "-R", "2000",
                 "-n", str(EXCHANGES), "-W", "2000000", SERVER],
                check=False, timeout=120,
            ).stdout  # fmt: skip
        finally:
            stats = server.stop()
    sections = dict(re.findall(r"Statistics for: ([A-Z-]+)\*+\n(.*?)collected", out, re.S))
    assert set(sections) == {"DISCOVER-OFFER", "REQUEST-ACK"}, out
    for name, text in sections.items():
        numbers = dict(re.findall(r"^([a-z ]+): (\d+)$", text, re.M))
        assert numbers["sent packets"] == str(EXCHANGES), (name, out)
        assert numbers["received packets"] == str(EXCHANGES), (name, out)
        assert numbers["drops"] == "0" and numbers["rejected leases"] == "0", (name, out)
    assert "Malformed packets: 0" in out
    assert stats["sent"] == 2 * EXCHANGES and stats.get("errors", 0) == 0
