"""DHCP full-mode load: DORA exchanges per second and drops, Slate vs dnsmasq.

    sudo .venv/bin/python bench/dhcp_bench.py [--rate 1000] [--seconds 5] [--runs 3]

perfdhcp (Kea) runs in a client namespace and offers ``--rate`` DORA exchanges per
second from up to 20,000 simulated clients (as a relay, giaddr = its address) for
``--seconds``; the server under test runs in the server namespace with a 10,240-address
pool and a fresh lease store each run.  The baseline is dnsmasq serving the same pool
under the same load in the same invocation.  Prints the median of ``--runs`` runs of
each and the ratio Slate/dnsmasq.  A drop is a request perfdhcp got no answer to within
1 s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.lab.netns import Lab, Netns  # noqa: E402

SERVER, CLIENT = "10.77.0.1", "10.77.0.60"
POOL_FIRST, POOL_LAST = "10.77.1.0", "10.77.40.255"  # 10,240 addresses


@dataclass
class Run:
    rate: float
    sent: int
    drops: int

    @property
    def drop_pct(self) -> float:
        return 100.0 * self.drops / self.sent if self.sent else 0.0


def start_slate(srv: Netns, tmp: Path) -> subprocess.Popen[str]:
    (tmp / "home").mkdir()
    cmd = [sys.executable, "-m", "appliance.dhcp", "--interface", "eth0", "--address", SERVER,
           "--mode", "full", "--network", "10.77.0.0/16", "--pool", f"{POOL_FIRST}-{POOL_LAST}",
           "--home", str(tmp / "home")]  # fmt: skip
    proc = srv.popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=(tmp / "slate.log").open("w"),
                     text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def start_dnsmasq(srv: Netns, tmp: Path) -> subprocess.Popen[str]:
    cmd = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
           "--bind-interfaces", "--dhcp-authoritative", "--no-ping", "--dhcp-lease-max=20000",
           f"--dhcp-range={POOL_FIRST},{POOL_LAST},255.255.0.0,1h",
           f"--dhcp-leasefile={tmp / 'dnsmasq.leases'}",
           f"--pid-file={tmp / 'dnsmasq.pid'}"]  # fmt: skip
    log = tmp / "dnsmasq.log"
    proc = srv.popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    for _ in range(100):
        if "DHCP, sockets bound" in log.read_text():
            return proc
        time.sleep(0.1)
    raise SystemExit(f"dnsmasq did not start:\n{log.read_text()}")


def perfdhcp(client: Netns, rate: int, seconds: int) -> Run:
    out = client.run(
        ["perfdhcp", "-4", "-l", "eth0", "-r", str(rate), "-R", "20000", "-p", str(seconds),
         "-W", "1000000", SERVER],
        check=False, timeout=seconds + 60,
    ).stdout  # fmt: skip
    achieved = float(re.search(r"Rate: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    sent = [int(n) for n in re.findall(r"^sent packets: (\d+)$", out, re.M)]
    drops = [int(n) for n in re.findall(r"^drops: (\d+)$", out, re.M)]
    return Run(achieved, sum(sent), sum(drops))


def one_run(which: str, rate: int, seconds: int) -> Run:
    with tempfile.TemporaryDirectory() as t, Lab() as lab:
        tmp = Path(t)
        srv = lab.add_host("srv", f"{SERVER}/16")
        client = lab.add_host("perf", f"{CLIENT}/16")
        proc = start_slate(srv, tmp) if which == "slate" else start_dnsmasq(srv, tmp)
        try:
            return perfdhcp(client, rate, seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=int, default=1000, help="offered DORA exchanges per second")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    if shutil.which("perfdhcp") is None:
        raise SystemExit("perfdhcp is missing: apt-get install kea-admin")
    results: dict[str, list[Run]] = {"dnsmasq": [], "slate": []}
    for n in range(args.runs):
        for which in results:  # interleaved, so drift on a shared machine hits both
            run = one_run(which, args.rate, args.seconds)
            results[which].append(run)
            print(f"run {n + 1} {which:8s} {run.rate:8.1f} DORA/s  drops {run.drops:6d} "
                  f"({run.drop_pct:.2f} %)", flush=True)  # fmt: skip
    med = {k: (statistics.median(r.rate for r in v), statistics.median(r.drop_pct for r in v))
           for k, v in results.items()}  # fmt: skip
    print(f"\noffered {args.rate} DORA/s for {args.seconds} s, median of {args.runs} runs")
    for which, (rate, drops) in med.items():
        print(f"  {which:8s} {rate:8.1f} DORA/s  drops {drops:.2f} %")
    print(f"  ratio slate/dnsmasq: {med['slate'][0] / med['dnsmasq'][0]:.2f}")


if __name__ == "__main__":
    main()
