"""The lab: an appliance and PXE machines on a network of their own.

``LabRun`` builds the whole thing and tears down exactly what it made::

    netns <prefix>-net   bridge br0 ── tap0, tap1 … (QEMU machines)
                             └──────── veth ── netns <prefix>-srv: eth0 10.77.0.1/24
                                                 `slate serve --dhcp full` (DHCP, TFTP,
                                                 DNS, HTTP on port 80), RA sender
    host 127.0.0.1:PORT  ── forwarder (appliance.lab.forward) ──> the srv namespace's
                                                                   127.0.0.1:8443 (console)

Boot traffic never leaves the lab's namespaces; the only thing on the host is the
forwarder's loopback socket, so a person can open the web console (HTTPS, end to end:
the forwarder relays TCP; the certificate is the lab's ``console-cert.pem``).  Every process is
recorded with its PID and start time (``state()``), which is what ``slate lab down``
uses to stop exactly those processes — never anything found by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.config import Layout
from appliance.errors import Conflict, NotFound, SlateError
from appliance.lab.netns import IP, Lab, Netns
from appliance.lab.qemu import Firmware, Machine
from appliance.secrets_file import write_secret

SUBNET = "10.77.0"
SERVER_IP = f"{SUBNET}.1"
POOL = f"{SUBNET}.100-{SUBNET}.199"
LAB_HTTP_PORT = 80
# The console listens on the srv namespace's loopback only (slate serve's default).
LAB_CONSOLE = "127.0.0.1:8443"
# Roomcast's rate in the lab: the lab's links claim 10 Gbit/s, but machines emulated
# by TCG on two cores take in far less; what they cannot take they would fetch again.
LAB_MULTICAST_RATE = "20M"
STATE_FILE = Layout.LAB_STATE


class LabError(SlateError):
    """The lab (namespaces, appliance, machines) did not come up or go down cleanly."""


@dataclass(frozen=True)
class Proc:
    """A process we started, identified by PID *and* kernel start time (PID reuse)."""

    role: str
    pid: int
    started: int

    @classmethod
    def of(cls, role: str, pid: int) -> Proc:
        return cls(role, pid, start_time(pid) or 0)

    def alive(self) -> bool:
        return self.started != 0 and start_time(self.pid) == self.started

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL — only if it is still the very process we started."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            _reap(self.pid)
            time.sleep(0.1)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        _reap(self.pid)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class MachineInfo:
    name: str
    firmware: str
    mac: str
    disk: str
    serial: str
    memory: int
    tap: str
    extra_args: list[str]
    disk_model: str = "virtio"  # appliance.lab.qemu.DISK_DEVICES
    netboot: str = "pxe"  # or "http" (UEFI HTTP boot)


class LabRun:
    """One running lab.  Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        home: Path,
        workdir: Path,
        *,
        prefix: str | None = None,
        accel: str = "tcg",
        console_port: int | None = None,
        serve_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.home = Path(home)
        self.workdir = Path(workdir)
        self.prefix = prefix
        self.accel = accel
        self.console_port = console_port
        self.serve_args = list(serve_args)
        self.python = python
        self.lab: Lab | None = None
        self.srv: Netns | None = None
        self.procs: list[Proc] = []
        self.machines: dict[str, Machine] = {}
        self.infos: dict[str, MachineInfo] = {}
        self._popen: list[subprocess.Popen[bytes]] = []

    # --- bring up ----------------------------------------------------------------

    def start(self, *, detach: bool = False) -> LabRun:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lab = Lab(self.prefix)
        self.prefix = self.lab.prefix
        try:
            self.srv = self.lab.add_host("srv", f"{SERVER_IP}/24")
            self._spawn("serve", self.srv.argv(self.serve_argv()), detach)
            self._spawn(
                "ra", self.srv.argv([self.python, "-m", "appliance.lab.ra", "eth0"]), detach
            )
            self.wait_http()
            if self.console_port:
                self._start_forwarder(detach)
        except BaseException:
            self.stop()
            raise
        return self

    def serve_argv(self) -> list[str]:
        return [
            self.python, "-m", "appliance.cli", "--home", str(self.home), "serve",
            "--interface", "eth0", "--address", SERVER_IP, "--dhcp", "full",
            "--pool", POOL, "--router", SERVER_IP, "--http-port", str(LAB_HTTP_PORT),
            "--multicast-rate", LAB_MULTICAST_RATE, *self.serve_args,
        ]  # fmt: skip

    def _spawn(self, role: str, argv: list[str], detach: bool) -> Proc:
        log = open(self.workdir / f"{role}.log", "ab")  # noqa: SIM115 (child keeps it)
        with log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        self._popen.append(popen)
        proc = Proc.of(role, popen.pid)
        self.procs.append(proc)
        return proc

    def _start_forwarder(self, detach: bool) -> None:
        assert self.srv is not None
        ready = self.workdir / "forward.ready"
        ready.unlink(missing_ok=True)
        argv = [
            self.python, "-m", "appliance.lab.forward",
            "--listen", f"127.0.0.1:{self.console_port}", "--netns", self.srv.name,
            "--to", LAB_CONSOLE, "--ready", str(ready),
        ]  # fmt: skip
        proc = self._spawn("forward", argv, detach)
        self._wait(lambda: ready.exists(), 10, "the console forwarder", proc)

    def wait_http(self, timeout: float = 60) -> None:
        """Wait until the appliance answers HTTP inside the lab, and its console (HTTPS,
        the srv namespace's loopback; its certificate exists from then on)."""
        assert self.srv is not None
        urls = [f"http://{SERVER_IP}:{LAB_HTTP_PORT}/", f"https://{LAB_CONSOLE}/login"]
        serve = next(p for p in self.procs if p.role == "serve")

        def up() -> bool:
            assert self.srv is not None
            for url in urls:  # -k: readiness only (people check the printed fingerprint)
                cmd = ["curl", "-sk", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", url]
                if self.srv.run(cmd, check=False).stdout.strip() in ("", "000"):
                    return False
            return True

        self._wait(up, timeout, "slate serve", serve)

    def _wait(self, ok: Any, timeout: float, what: str, proc: Proc) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if not proc.alive():
                raise LabError(
                    f"{what} exited while the lab was starting",
                    hint=f"{self.workdir / (proc.role + '.log')}: {self.log_tail(proc.role)}",
                )
            if time.monotonic() > deadline:
                raise LabError(f"{what} did not come up within {timeout:.0f} s",
                               hint=f"its log: {self.workdir / (proc.role + '.log')}")  # fmt: skip
            time.sleep(0.3)

    def log_tail(self, role: str, n: int = 800) -> str:
        try:
            return (self.workdir / f"{role}.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # --- machines ----------------------------------------------------------------

    def add_machine(
        self,
        name: str,
        firmware: Firmware,
        *,
        disk_size: int | None = None,
        disk: Path | None = None,
        serial: str | None = None,
        memory: int = 512,
        mac: str | None = None,
        extra_args: Sequence[str] = (),
        disk_model: str = "virtio",
        netboot: str = "pxe",
    ) -> Machine:
        """A machine on the lab network (not started).  New disks are empty sparse files."""
        assert self.lab is not None, "start() the lab first"
        if name in self.machines:
            raise Conflict(f"the lab already has a machine named {name}")
        disk = disk or self.workdir / f"{name}.disk.img"
        if disk_size is not None:
            with open(disk, "wb") as fh:
                fh.truncate(disk_size)
        serial = serial or f"SLATE-{name.upper()}"
        tap = self.lab.add_tap()
        info = MachineInfo(name, firmware, mac or "", str(disk), serial, memory, tap,
                           list(extra_args), disk_model, netboot)  # fmt: skip
        m = machine_from(info, self.lab.net.name, self.accel, self.workdir)
        info.mac = m.mac
        self.machines[name] = m
        self.infos[name] = info
        return m

    def start_machine(self, name: str) -> Proc:
        m = self.machines[name]
        m.start()
        assert m.pid is not None
        proc = Proc.of(f"qemu:{name}", m.pid)
        self.procs = [p for p in self.procs if p.role != proc.role] + [proc]
        return proc

    def stop_machine(self, name: str) -> None:
        self.machines[name].stop()

    # --- tear down ---------------------------------------------------------------

    def stop(self) -> None:
        for m in self.machines.values():
            m.stop()
        for proc in reversed(self.procs):
            proc.stop()
        for popen in self._popen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(1)
        self.procs.clear()
        if self.lab is not None:
            self.lab.close()
            self.lab = None

    def __enter__(self) -> LabRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state file (slate lab up / down) ------------------------------------------

    def state(self) -> dict[str, Any]:
        assert self.lab is not None
        names = [self.lab.net.name, *(ns.name for ns in self.lab.hosts.values())]
        return {
            "prefix": self.prefix,
            "namespaces": names,
            "procs": [asdict(p) for p in self.procs],
            "machines": [asdict(i) for i in self.infos.values()],
            "workdir": str(self.workdir),
            "accel": self.accel,
            "console": f"https://127.0.0.1:{self.console_port}/" if self.console_port else None,
            "console_sha256": console_fingerprint(self.home) if self.console_port else None,
            "server": SERVER_IP,
        }


def console_fingerprint(home: Path) -> str | None:
    """SHA-256 of the console's certificate (made by ``slate serve`` at first start), as a
    browser shows it; None before it exists."""
    from appliance.http.listeners import fingerprint

    cert = Layout(home).console_cert
    return fingerprint(cert) if cert.is_file() else None


def machine_from(info: MachineInfo, netns: str, accel: str, workdir: Path) -> Machine:
    return Machine(
        info.name, info.firmware, mac=info.mac or None,  # type: ignore[arg-type]
        disks=[(info.disk, info.serial)], tap=info.tap, netns=netns, accel=accel,
        memory=info.memory, workdir=workdir, extra_args=info.extra_args,
        netboot=info.netboot, disk_models=[info.disk_model],  # type: ignore[arg-type]
    )  # fmt: skip


def save_state(home: Path, state: dict[str, Any]) -> Path:
    """Write the state file atomically, readable by its owner only: it carries the
    lab's console login."""
    return write_secret(Layout(home).lab_state, json.dumps(state, indent=2))


def load_state(home: Path) -> dict[str, Any]:
    path = Layout(home).lab_state
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFound(
            f"no lab is running for data directory {home}", hint="start one with `slate lab up`"
        ) from None


def stop_from_state(home: Path) -> list[str]:
    """Stop exactly the processes and namespaces a ``slate lab up`` recorded."""
    state = load_state(home)
    done: list[str] = []
    # Machines first, the appliance last: nothing is left half-way in a restore.
    procs = [Proc(**p) for p in state.get("procs", [])]
    procs.sort(key=lambda p: (not p.role.startswith("qemu:"), p.role == "serve"))
    for proc in procs:
        if proc.alive():
            proc.stop()
            done.append(f"stopped {proc.role} (pid {proc.pid})")
    for name in reversed(state.get("namespaces", [])):
        if Path(f"/run/netns/{name}").exists():
            subprocess.run([IP, "netns", "delete", name], capture_output=True)
            done.append(f"removed namespace {name}")
    Layout(home).lab_state.unlink(missing_ok=True)
    return done


def status_from_state(home: Path) -> dict[str, Any]:
    state = load_state(home)
    for p in state.get("procs", []):
        p["alive"] = Proc(p["role"], p["pid"], p["started"]).alive()
    for name in state.get("namespaces", []):
        state.setdefault("namespaces_present", {})[name] = Path(f"/run/netns/{name}").exists()
    return state


def power_on(home: Path, names: Sequence[str] = ()) -> list[str]:
    """(Re)start lab machines from the state file: a power cycle if one still runs."""
    state = load_state(home)
    infos = [MachineInfo(**m) for m in state["machines"]]
    unknown = set(names) - {i.name for i in infos}
    if unknown:
        raise NotFound(f"the lab has no machine {', '.join(sorted(unknown))}",
                       hint="see `slate lab status`")  # fmt: skip
    procs = {p["role"]: Proc(**p) for p in state["procs"]}
    lines = []
    for info in infos:
        if names and info.name not in names:
            continue
        old = procs.get(f"qemu:{info.name}")
        if old is not None and old.alive():
            old.stop()
            lines.append(f"powered off {info.name}")
        m = machine_from(info, state["namespaces"][0], state.get("accel", "tcg"),
                         Path(state["workdir"]))  # fmt: skip
        m.start()
        assert m.pid is not None
        procs[f"qemu:{info.name}"] = Proc.of(f"qemu:{info.name}", m.pid)
        lines.append(f"powered on {info.name} (pid {m.pid}); console log {m.serial_log}")
    state["procs"] = [asdict(p) for p in procs.values()]
    save_state(home, state)
    return lines
