"""Shared helpers of the DHCP interop tests (no tests here): a lab with a server
namespace, Slate's DHCP service run in it, the probe client, and real clients' scripts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from appliance.lab.netns import Lab, Netns
from tests.conftest import ROOT, require_root

SERVER = "10.77.0.1"
NETWORK = "10.77.0.0/24"
POOL = "10.77.0.100-10.77.0.149"

# dhclient runs this instead of dhclient-script: configures the address in the client
# namespace only (the real script would rewrite the host's /etc/resolv.conf).
DHCLIENT_SCRIPT = """#!/bin/sh
echo "$reason $new_ip_address" >> "{log}"
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    [ "$old_ip_address" = "$new_ip_address" ] || /usr/sbin/ip addr flush dev "$interface"
    /usr/sbin/ip addr replace "$new_ip_address/24" brd + dev "$interface" ;;
  RELEASE|EXPIRE|STOP) /usr/sbin/ip addr flush dev "$interface" ;;
esac
exit 0
"""
UDHCPC_SCRIPT = """#!/bin/sh
echo "$1 $ip" >> "{log}"
case "$1" in
  bound|renew) /usr/sbin/ip addr replace "$ip/24" brd + dev "$interface" ;;
  deconfig) /usr/sbin/ip addr flush dev "$interface" ;;
esac
exit 0
"""


def script(path: Path, template: str, log: Path) -> Path:
    path.write_text(template.format(log=log))
    path.chmod(0o755)
    return path


class SlateDhcp:
    """``python -m appliance.dhcp`` running inside a namespace; stderr is its log."""

    def __init__(self, ns: Netns, log: Path, *args: str) -> None:
        self.ns, self.log_path = ns, log
        cmd = [sys.executable, "-m", "appliance.dhcp", "--interface", "eth0"]
        cmd += ["--address", SERVER, *args]
        self.log_file = log.open("a")
        self.proc = ns.popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log_file, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"DHCP server did not start:\n{self.log()}"
        self.stats: dict[str, int] = {}

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text()

    def stop(self) -> dict[str, int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            out, _ = self.proc.communicate(timeout=15)
            for line in out.splitlines():
                if line.startswith("stats"):
                    pairs = (kv.split("=") for kv in line.split()[1:])
                    self.stats = {k: int(v) for k, v in pairs}
        self.log_file.close()
        return self.stats


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def probe(ns: Netns, *args: str, wait: float = 3.0) -> list[dict[str, object]]:
    """Run the probe client in ``ns``; its replies as dicts."""
    cmd = [sys.executable, "-m", "appliance.dhcp.probe", "--interface", "eth0"]
    out = ns.run([*cmd, "--wait", str(wait), *args], cwd=ROOT, timeout=wait + 20)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@contextmanager
def lab_with_server() -> Iterator[tuple[Lab, Netns]]:
    require_root()
    lab = Lab()
    try:
        yield lab, lab.add_host("srv", f"{SERVER}/24")
    finally:
        lab.close()


def kill(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pid_of(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_pid(path: Path) -> None:
    """Stop a daemon that wrote ``path`` (its own pid file), by that pid only."""
    pid = pid_of(path)
    if pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
