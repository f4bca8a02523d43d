"""`slate serve` in a network namespace, with real clients: tftp-hpa, curl, dig, udhcpc.

One server (full DHCP mode, DNS forwarding to a dnsmasq "upstream") serves the whole
module; every client runs in its own namespace on the same bridge.  A host on another
subnet ("out") checks that DNS is not an open resolver for it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab.netns import Lab, Netns
from bench.boot_storm import ServeProcess
from tests.conftest import require_root

SRV = "10.77.0.1"
UPSTREAM = "10.77.0.3"
IPXE = Path("/usr/lib/ipxe")


@dataclass
class Net:
    lab: Lab
    srv: Netns
    cl: Netns
    out: Netns
    serve: ServeProcess
    home: Path
    tmp: Path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    require_root()
    tmp = tmp_path_factory.mktemp("serve")
    lab = Lab()
    procs: list[subprocess.Popen[bytes]] = []
    serve = None
    try:
        srv = lab.add_host("srv", f"{SRV}/24")
        cl = lab.add_host("cl", "10.77.0.2/24")
        up = lab.add_host("up", f"{UPSTREAM}/24")
        out = lab.add_host("out", "10.88.0.5/24")
        out.run(["ip", "route", "add", "10.77.0.0/24", "dev", "eth0"])
        srv.run(["ip", "route", "add", "10.88.0.0/24", "dev", "eth0"])
        procs.append(
            up.popen(
                ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                 f"--listen-address={UPSTREAM}", "--bind-interfaces",
                 "--address=/example.test/10.9.9.9"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        home = tmp / "home"
        serve = ServeProcess(
            srv,
            home,
            *("--interface", "eth0", "--dhcp", "full", "--pool", "10.77.0.100-10.77.0.150"),
            *("--upstream-dns", UPSTREAM, "--verbose"),
        )
        yield Net(lab, srv, cl, out, serve, home, tmp)
    finally:
        if serve is not None:
            serve.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        lab.close()


def curl(ns: Netns, url: str, dest: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return ns.run(["curl", "-sS", "--max-time", "20", *extra, "-o", str(dest), url], check=False)


# --- TFTP --------------------------------------------------------------------------------


@pytest.mark.parametrize("blksize", [512, 1468, 8192])
def test_curl_fetches_boot_files_byte_identical(net: Net, blksize: int) -> None:
    for name in ("undionly.kpxe", "snponly.efi"):
        dest = net.tmp / f"curl-{blksize}-{name}"
        proc = curl(net.cl, f"tftp://{SRV}/{name}", dest, "--tftp-blksize", str(blksize))
        assert proc.returncode == 0, proc.stderr
        assert dest.read_bytes() == (IPXE / name).read_bytes()
    assert f"blksize {blksize}" in net.serve.output()


def test_tftp_hpa_fetches_byte_identical(net: Net) -> None:
    for name in ("undionly.kpxe", "ipxe.efi", "shimx64.efi"):
        dest = net.tmp / f"hpa-{name}"
        proc = net.cl.run(["tftp", "-m", "binary", SRV, "-c", "get", name, str(dest)])
        assert "Error" not in proc.stdout + proc.stderr
        assert dest.read_bytes() == (net.home / "tftp" / name).read_bytes()
    assert (net.home / "tftp/undionly.kpxe").read_bytes() == (IPXE / "undionly.kpxe").read_bytes()


def test_paths_out_of_the_root_are_refused_and_logged(net: Net) -> None:
    (net.home / "tftp" / "leak").symlink_to(net.home / "slate.db")
    attempts = ["../slate.db", "/../slate.db", "..\\slate.db", "grub/../../slate.db", "leak"]
    for n, name in enumerate(attempts):
        dest = net.tmp / f"escape-{n}"
        proc = net.cl.run(["tftp", "-m", "binary", SRV, "-c", "get", name, str(dest)])
        assert "Error code 2" in proc.stdout, (name, proc.stdout, proc.stderr)
        assert not dest.exists() or dest.stat().st_size == 0
    proc = curl(net.cl, f"tftp://{SRV}/../../etc/passwd", net.tmp / "c", "--path-as-is")
    assert proc.returncode != 0
    # An absolute host path is looked up inside the root, where it does not exist.
    proc = net.cl.run(["tftp", "-m", "binary", SRV, "-c", "get", "/etc/passwd", "/dev/null"])
    assert "Error code 1" in proc.stdout
    log = net.serve.output()
    assert log.count("'..' in file name") >= 3
    assert "backslash" in log and "leaves the TFTP root" in log


def test_many_clients_at_once(net: Net) -> None:
    procs = []
    for n in range(24):
        blksize = (512, 1468, 8192)[n % 3]
        dest = net.tmp / f"many-{n}"
        argv = ["curl", "-sS", "--max-time", "60", "--tftp-blksize", str(blksize)]
        argv += ["-o", str(dest), f"tftp://{SRV}/snponly.efi"]
        procs.append((dest, net.cl.popen(argv)))
    expected = (IPXE / "snponly.efi").read_bytes()
    for dest, proc in procs:
        assert proc.wait(90) == 0
        assert dest.read_bytes() == expected


def test_malformed_packets_are_dropped_and_logged(net: Net) -> None:
    garbage = [b"\x00", b"\x00\x01no-terminator", b"\x00\x63junk\x00octet\x00", bytes(1500)]
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"for p in {garbage!r}: s.sendto(p,('{SRV}',69))\n"
    )
    net.cl.run(["python3", "-c", script])
    dest = net.tmp / "after-garbage"
    assert curl(net.cl, f"tftp://{SRV}/undionly.kpxe", dest).returncode == 0
    assert dest.read_bytes() == (IPXE / "undionly.kpxe").read_bytes()
    assert net.serve.output().count("tftp: dropped") >= len(garbage)
    assert net.serve.proc.poll() is None


# --- DNS ---------------------------------------------------------------------------------


def dig(ns: Netns, *args: str) -> str:
    proc = ns.run(["dig", "+time=2", "+tries=2", f"@{SRV}", *args], check=False)
    return proc.stdout


def short(ns: Netns, *args: str) -> str:
    return dig(ns, "+short", *args).strip()


def test_dns_answers_for_the_appliance_and_leased_machines(net: Net) -> None:
    pc = net.lab.add_host("pc7", mac="02:00:00:00:07:07")
    udhcpc = ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "5", "-T", "1"]
    pc.run([*udhcpc, "-s", "/bin/true", "-x", "hostname:pc7"])
    leased = None
    for _ in range(20):  # the lease is in the database once udhcpc has its ACK
        with sqlite3.connect(net.home / "slate.db") as conn:
            row = conn.execute("SELECT ip FROM leases WHERE hostname='pc7'").fetchone()
        if row:
            leased = row[0]
            break
        time.sleep(0.5)
    assert leased and leased.startswith("10.77.0.1")
    assert short(net.cl, "slate.slate.lan") == SRV
    answer = ""
    for _ in range(10):  # names are re-read from the database once a second
        answer = short(net.cl, "pc7.slate.lan")
        if answer:
            break
        time.sleep(0.5)
    assert answer == leased
    assert short(net.cl, "-x", leased) == "pc7.slate.lan."
    assert short(net.cl, "-x", SRV) == "slate.slate.lan."
    assert "status: NXDOMAIN" in dig(net.cl, "nobody.slate.lan")


def test_dns_forwards_other_names_to_the_upstream(net: Net) -> None:
    assert short(net.cl, "www.example.test") == "10.9.9.9"


def test_dns_refuses_queries_from_outside_the_subnet(net: Net) -> None:
    out = net.out.run(["dig", "+time=2", "+tries=1", f"@{SRV}", "slate.slate.lan"], check=False)
    assert "status: REFUSED" in out.stdout
    assert "outside 10.77.0.0/24" in net.serve.output()


# --- the process -------------------------------------------------------------------------


def test_serve_stops_cleanly_and_explains_a_busy_port(tmp_path: Path) -> None:
    require_root()
    with Lab() as lab:
        ns = lab.add_host("srv", "10.79.0.1/24")
        serve = ServeProcess(ns, tmp_path / "home", "--interface", "eth0", "--dhcp", "proxy")
        assert serve.stop() == 0
        out = serve.output()
        assert "serve: ready" in out and "serve: stopped" in out
        # Another TFTP server holds port 69: one clear line and a hint, exit 1.
        holder = ns.popen(
            ["python3", "-c", "import socket,time; s=socket.socket(socket.AF_INET,"
             "socket.SOCK_DGRAM); s.bind(('10.79.0.1',69)); print('up',flush=True); "
             "time.sleep(60)"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"up\n"
            argv = [sys.executable, "-m", "appliance.cli", "--home", str(tmp_path / "home")]
            proc = ns.run([*argv, "serve", "--interface", "eth0", "--dhcp", "off"], check=False)
        finally:
            holder.kill()
            holder.wait()
        assert proc.returncode == 1
        assert "tftp could not listen on 10.79.0.1" in proc.stderr
        assert "hint:" in proc.stderr


def test_serve_explains_a_wrong_interface(slate) -> None:  # type: ignore[no-untyped-def]
    proc = slate("serve", "--interface", "nosuch0", "--dhcp", "off")
    assert proc.returncode == 1
    assert "interface 'nosuch0' does not exist" in proc.stderr
    assert "hint:" in proc.stderr
