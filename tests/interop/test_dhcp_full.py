"""Full mode: ISC dhclient and busybox udhcpc obtain, renew and release leases from
Slate's DHCP service; leases survive a restart of the service."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from appliance import db
from appliance.config import Layout
from tests.interop.test_dhcp_support import (
    DHCLIENT_SCRIPT,
    NETWORK,
    POOL,
    SERVER,
    UDHCPC_SCRIPT,
    SlateDhcp,
    kill,
    lab_with_server,
    probe,
    script,
    stop_pid,
    wait_for,
)

FULL = ("--mode", "full", "--network", NETWORK, "--pool", POOL, "--router", SERVER,
        "--dns", SERVER, "--domain", "lab.test")  # fmt: skip
DHCLIENT_MAC = "02:00:00:00:01:01"
UDHCPC_MAC = "02:00:00:00:01:02"


def bound_ip(log: Path, states: tuple[str, ...]) -> str | None:
    if not log.exists():
        return None
    for line in reversed(log.read_text().splitlines()):
        parts = line.split()
        if len(parts) == 2 and parts[0] in states:
            return parts[1]
    return None


def unicast_acks(server_log: str, ip: str) -> int:
    return len(re.findall(rf"ACK {re.escape(ip)} to .* via {re.escape(ip)}:68", server_log))


def test_dhclient_obtains_renews_releases_and_lease_survives_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    args = (*FULL, "--home", str(home), "--lease-seconds", "20")
    log = tmp_path / "dhclient.log"
    run = script(tmp_path / "dhclient-script", DHCLIENT_SCRIPT, log)
    base = ["dhclient", "-4", "-sf", str(run), "-lf", str(tmp_path / "leases")]
    base += ["-pf", str(tmp_path / "dhclient.pid")]
    with lab_with_server() as (lab, srv):
        client = lab.add_host("c1", mac=DHCLIENT_MAC)
        server = SlateDhcp(srv, tmp_path / "slate.log", *args)
        try:
            client.run([*base, "-1", "eth0"], timeout=60)
            ip = bound_ip(log, ("BOUND",))
            assert ip is not None and ip.startswith("10.77.0.1"), log.read_text()
            # lease 20 s -> T1 10 s: the running dhclient renews by unicast to us.
            wait_for(lambda: unicast_acks(server.log(), ip) >= 1, 40, "a renewal")
            # dhclient runs its script after the ACK arrives: wait for it, do not race it.
            wait_for(lambda: "RENEW" in log.read_text(), 20, "dhclient's RENEW")
        finally:
            stop_pid(tmp_path / "dhclient.pid")  # SIGTERM: dhclient exits, keeps its lease
            server.stop()
        rows = db.connect(Layout(home).db).execute("SELECT ip, state FROM leases").fetchall()
        assert [tuple(r) for r in rows] == [(ip, "bound")]
        # Restart: the bound lease is known from the database alone.
        server = SlateDhcp(srv, tmp_path / "slate2.log", *args)
        try:
            other = lab.add_host("c9", mac="02:00:00:00:01:09")
            taken = probe(other, "--mac", "02:00:00:00:01:09", "--type", "request",
                          "--requested", ip)  # fmt: skip
            assert [r["type"] for r in taken] == ["NAK"]
            offer = probe(other, "--mac", "02:00:00:00:01:09")
            assert len(offer) == 1 and offer[0]["yiaddr"] != ip
            (tmp_path / "leases").unlink()  # dhclient forgets; Slate must remember
            client.run([*base, "-1", "eth0"], timeout=60)
            assert bound_ip(log, ("BOUND",)) == ip
            client.run([*base, "-r", "eth0"], timeout=30)
            wait_for(lambda: f"released {ip}" in server.log(), 15, "the release")
        finally:
            stop_pid(tmp_path / "dhclient.pid")
            server.stop()
        state = db.connect(Layout(home).db).execute("SELECT state FROM leases WHERE ip=?", (ip,))
        assert state.fetchone()[0] == "released"


def test_udhcpc_obtains_renews_releases(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "udhcpc.log"
    run = script(tmp_path / "udhcpc-script", UDHCPC_SCRIPT, log)
    with lab_with_server() as (lab, srv):
        client = lab.add_host("c2", mac=UDHCPC_MAC)
        server = SlateDhcp(srv, tmp_path / "slate.log", *FULL, "--home", str(home))
        cmd = ["busybox", "udhcpc", "-f", "-i", "eth0", "-s", str(run), "-t", "5", "-T", "1"]
        proc = client.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: bound_ip(log, ("bound",)) is not None, 30, "udhcpc bound")
            ip = bound_ip(log, ("bound",))
            assert ip is not None
            proc.send_signal(signal.SIGUSR1)  # renew now
            wait_for(lambda: bound_ip(log, ("renew",)) == ip, 20, "udhcpc renew")
            assert unicast_acks(server.log(), ip) >= 1
            proc.send_signal(signal.SIGUSR2)  # release
            wait_for(lambda: f"released {ip}" in server.log(), 15, "the release")
        finally:
            kill(proc)
            stats = server.stop()
        assert stats["sent"] >= 3 and stats.get("errors", 0) == 0
        rows = db.connect(Layout(home).db).execute("SELECT mac, state FROM leases").fetchall()
        assert [tuple(r) for r in rows] == [(UDHCPC_MAC, "released")]


def test_two_clients_get_distinct_addresses_and_dns_options(tmp_path: Path) -> None:
    log1, log2 = tmp_path / "a.log", tmp_path / "b.log"
    with lab_with_server() as (lab, srv):
        home = tmp_path / "home"
        home.mkdir()
        server = SlateDhcp(srv, tmp_path / "slate.log", *FULL, "--home", str(home))
        procs = []
        try:
            for role, mac, log in (
                ("a", "02:00:00:00:02:01", log1),
                ("b", "02:00:00:00:02:02", log2),
            ):
                ns = lab.add_host(role, mac=mac)
                run = script(tmp_path / f"{role}.sh", UDHCPC_SCRIPT, log)
                cmd = ["busybox", "udhcpc", "-f", "-q", "-i", "eth0", "-s", str(run)]
                procs.append(ns.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for p in procs:
                p.wait(timeout=30)
        finally:
            for p in procs:
                kill(p)
            server.stop()
    a, b = bound_ip(log1, ("bound",)), bound_ip(log2, ("bound",))
    assert a and b and a != b


def test_inform_and_decline_over_the_wire(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mac, other = "02:00:00:00:03:01", "02:00:00:00:03:02"
    with lab_with_server() as (lab, srv):
        server = SlateDhcp(srv, tmp_path / "slate.log", *FULL, "--home", str(home))
        try:
            static = lab.add_host("static", "10.77.0.70/24", mac=mac)
            inform = probe(static, "--mac", mac, "--type", "inform", "--ciaddr", "10.77.0.70",
                           "--to", SERVER)  # fmt: skip
            assert len(inform) == 1 and inform[0]["type"] == "ACK"
            opts = inform[0]["options"]
            assert "51" not in opts and opts["3"] == SERVER and opts["15"] == "'lab.test'"  # type: ignore[operator,index]
            client = lab.add_host("c", mac=other)
            offer = probe(client, "--mac", other)[0]
            ip = str(offer["yiaddr"])
            assert probe(client, "--mac", other, "--type", "decline", "--requested", ip,
                         "--server-id", SERVER, wait=1) == []  # fmt: skip
            again = probe(client, "--mac", other)[0]
            assert again["yiaddr"] != ip  # the declined address is quarantined
        finally:
            server.stop()
    assert f"declined {ip}" in server.log()
