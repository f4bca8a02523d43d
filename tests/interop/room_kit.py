"""A classroom in namespaces for roomcast's tests and bench: the appliance (the real HTTP
app with its roomcast sender, in its own namespace) and N seats (the real restore client
as processes, each in its own namespace) on one Linux bridge that snoops IGMP, every
seat's port shaped by tbf; loss by nftables on chosen ports."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from client_kit import ROOT, ServedHome, client_argv

from appliance.jobs import Job
from appliance.lab.netns import IP, Lab, Netns
from appliance.machines import Inventory
from appliance.roomcast import MULTICAST_SHARE
from appliance.units import parse_rate

SERVER = "10.83.0.1"
BOOT_PYTHON = "/usr/bin/python3"

# A seat "loaded before the go": the client's modules imported, as on a machine that has
# booted into the boot environment, then the job's work from the go on (Room.start_together).
LOADED = """import os, sys
from bootimage.client import main, restore, roomcast
sys.stdin.readline()
code = main.main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""


@functools.cache
def boot_python() -> str | None:
    """Debian's python3 when it can run the client as the boot environment does (python3
    with python3-zstandard, the client on PYTHONPATH), else None."""
    try:
        subprocess.run([BOOT_PYTHON, "-c", "import zstandard"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return BOOT_PYTHON


@dataclass
class SeatProc:
    name: str
    ns: Netns
    job: Job
    token: str
    disk: Path
    proc: subprocess.Popen[str] | None = None
    started: float = 0.0
    ended: float = 0.0
    out: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Room:
    lab: Lab
    app: ServedHome
    seats: list[SeatProc] = field(default_factory=list)
    python: str = sys.executable  # the seats' interpreter (boot_python: as in the boot env)

    def shape(self, seat: str, mbit: float, burst: str = "64kb") -> None:
        """Egress of the bridge toward ``seat`` (what it can receive) at ``mbit``."""
        port = self.lab.ports[seat]
        self.lab.net.run(["tc", "qdisc", "replace", "dev", port, "root", "tbf", "rate",
                          f"{mbit}mbit", "burst", burst, "latency", "50ms"])  # fmt: skip

    def loss(self, seats: list[str], percent: float) -> None:
        """Random loss of ``percent`` % of the UDP packets forwarded to ``seats``."""
        rules = "\n".join(
            f"add rule bridge roomloss seats oifname {self.lab.ports[s]} meta l4proto udp"
            f" numgen random mod 1000 < {int(percent * 10)} drop"
            for s in seats
        )
        self._nft("add table bridge roomloss\n"
                  "add chain bridge roomloss seats { type filter hook forward priority 0; }\n"
                  + rules)  # fmt: skip

    def block_multicast(self, seat: str) -> None:
        """Drop every multicast frame toward ``seat`` (a switch that does not forward it)."""
        self._nft("add table bridge roomblock\n"
                  "add chain bridge roomblock seats { type filter hook forward priority 0; }\n"
                  f"add rule bridge roomblock seats oifname {self.lab.ports[seat]}"
                  " ip daddr 224.0.0.0/4 drop")  # fmt: skip

    def _nft(self, script: str) -> None:
        self.lab.net.run(["nft", "-f", "-"], input=script)

    def argv(self, seat: SeatProc, *extra: str) -> list[str]:
        return client_argv(
            self.app.url, seat.job, seat.token, seat.disk, *extra, python=self.python
        )

    def popen(self, seat: SeatProc, argv: list[str], **kw: object) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))  # the client's source, as /opt/slate
        return seat.ns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=str(ROOT), env=env, **kw)  # fmt: skip

    def start(self, seat: SeatProc, *extra: str) -> None:
        argv = self.argv(seat, *extra)
        seat.started = time.monotonic()
        seat.proc = self.popen(seat, argv)

    def start_together(self, seats: list[SeatProc], *extra: str, loaded: bool = False) -> float:
        """Start ``seats`` at one instant, as machines woken together: each waits for a
        go, then all are let go at once.  (Started one by one, each launch took ~8 ms of
        this machine, and in a room of 32 the first seats had a head start of 0.25 s.)
        Cold (``loaded`` false) each waits in a shell and its interpreter starts at the
        go: 32 seats' start-up, ~0.07 CPU-s each, all on these 2 cores.  ``loaded``: each
        has imported the client before its go, as a machine whose own CPU has booted the
        environment has.  Returns the instant they were let go."""
        for seat in seats:
            argv = self.argv(seat, *extra)
            if loaded:  # python -m bootimage.client ... -> python -c LOADED ...
                argv = [argv[0], "-c", LOADED, *argv[3:]]
            else:
                argv = ["sh", "-c", 'read go && exec "$@"', "sh", *argv]
            seat.proc = self.popen(seat, argv, stdin=subprocess.PIPE)
        deadline = time.monotonic() + 30
        for seat in seats:  # every seat is in its read: the go is all that is left
            assert seat.proc is not None
            wchan = Path(f"/proc/{seat.proc.pid}/wchan")
            while not wchan.read_text().endswith("pipe_read"):  # (anon_)pipe_read
                if seat.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{seat.name} did not get ready to start")
                time.sleep(0.005)
        now = time.monotonic()
        for seat in seats:
            assert seat.proc is not None and seat.proc.stdin is not None
            seat.started = now
            seat.proc.stdin.write("\n")
            seat.proc.stdin.close()
            seat.proc.stdin = None  # communicate() must not flush it again
        return now

    def wait(self, seat: SeatProc, timeout: float = 300) -> int:
        assert seat.proc is not None
        seat.out, _ = seat.proc.communicate(timeout=timeout)
        seat.ended = time.monotonic()
        return seat.proc.returncode

    def wait_all(self, timeout: float = 300) -> list[int]:
        """Every started seat's exit code, each seat's ``ended`` taken when it exits (a
        thread each: waiting in turn would stamp a seat that ended early late)."""
        started = [s for s in self.seats if s.proc is not None]
        codes: dict[str, int] = {}

        def wait(seat: SeatProc) -> None:
            codes[seat.name] = self.wait(seat, timeout)

        threads = [threading.Thread(target=wait, args=(s,), daemon=True) for s in started]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [codes.get(s.name, -1) for s in started]

    def close(self) -> None:
        for s in self.seats:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        self.app.close()
        self.lab.close()


def link_of(rate: str, mbit: float | None = None) -> list[str]:
    """``--link-rate`` for an appliance in a namespace: its veth claims 10 Gbit/s, so the
    link a test means is said: ``mbit`` (the appliance's port shaped to it), else the one
    ``rate`` is 90 % of (the room's links, where the seats' ports are shaped)."""
    bits = int(mbit * 1_000_000) if mbit else int(parse_rate(rate) / MULTICAST_SHARE)
    return ["--link-rate", str(bits)]


def make_room(
    tmp: Path,
    image: Path,
    seats: int,
    *,
    rate: str = "90M",
    seat_mbit: float | None = 100,
    disk_size: int | None = None,
    transport: str = "auto",
    membership_interval: float | None = None,
    extra: tuple[str, ...] = (),
    python: str = sys.executable,
) -> Room:
    """The appliance serving ``image`` and ``seats`` seats with a restore job each (not
    started), the seats' client run by ``python``.  Targets are sparse files of the
    image's size (or ``disk_size``)."""
    lab = Lab()
    try:
        if membership_interval is not None:
            # A snooping switch with no querier: it forgets members after this long.
            lab.net.run([IP, "link", "set", "br0", "type", "bridge", "mcast_snooping", "1",
                         "mcast_querier", "0", "mcast_membership_interval",
                         str(int(membership_interval * 100))])  # fmt: skip
        srv = lab.add_host("srv", f"{SERVER}/24")
        app = ServedHome(
            tmp / "home",
            host=SERVER,
            wrap=[IP, "netns", "exec", srv.name],
            extra=["--multicast-rate", rate, *link_of(rate), *extra],
        )
    except BaseException:
        lab.close()
        raise
    room = Room(lab, app, python=python)
    try:
        app.import_disk(image)
        inv = Inventory(app.conn)
        inv.add_room("lab1", actor="test")
        size = disk_size or image.stat().st_size
        made = []
        for i in range(seats):
            name = f"seat{i + 1}"
            mac = f"52:54:00:83:00:{i + 1:02x}"
            inv.add_host(mac, name, actor="test", room="lab1")
            ns = lab.add_host(name, f"10.83.0.{10 + i}/24")
            if seat_mbit:
                room.shape(name, seat_mbit)
            disk = tmp / f"{name}.img"
            with disk.open("wb") as f:
                f.truncate(size)
            made.append((name, ns, disk))
        jobs = app.jobs().restore_room(
            "lab1", "lab", actor="test", options={"transport": transport}
        )
        by_host = {j.host_name: j for j in jobs}
        for name, ns, disk in made:
            job = by_host[name]
            room.seats.append(SeatProc(name, ns, job, app.jobs().token(job.id), disk))
        app.start()
    except BaseException:
        room.close()
        raise
    return room


def make_rooms(
    tmp: Path,
    images: dict[str, Path],
    seats: int,
    *,
    rate: str = "45M",
    srv_mbit: float | None = None,
    seat_mbit: float | None = 100,
    transport: str = "auto",
    python: str = sys.executable,
) -> Room:
    """One appliance serving several rooms at once: room ``R`` (each key of ``images``)
    has ``seats`` seats (``R-s1``, ``R-s2``, ...) with a restore job each (not started) of
    image ``R``, imported from ``images[R]``.  ``srv_mbit``: the appliance's own port
    shaped by tbf at that rate (the egress of the srv namespace's eth0), as a link of that
    speed would carry it.  ``room.seats`` holds every room's seats, room by room."""
    lab = Lab()
    try:
        srv = lab.add_host("srv", f"{SERVER}/24")
        if srv_mbit:
            srv.run(["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate",
                     f"{srv_mbit}mbit", "burst", "64kb", "latency", "50ms"])  # fmt: skip
        app = ServedHome(
            tmp / "home",
            host=SERVER,
            wrap=[IP, "netns", "exec", srv.name],
            extra=["--multicast-rate", rate, *link_of(rate, srv_mbit)],
        )
    except BaseException:
        lab.close()
        raise
    room = Room(lab, app, python=python)
    try:
        inv = Inventory(app.conn)
        made: dict[str, list[tuple[str, Netns, Path]]] = {}
        n = 0
        for name, image in images.items():
            app.import_disk(image, name)
            inv.add_room(name, actor="test")
            made[name] = []
            for i in range(seats):
                n += 1
                seat = f"{name}-s{i + 1}"
                inv.add_host(f"52:54:00:83:01:{n:02x}", seat, actor="test", room=name)
                ns = lab.add_host(seat, f"10.83.0.{10 + n}/24")
                if seat_mbit:
                    room.shape(seat, seat_mbit)
                disk = tmp / f"{seat}.img"
                with disk.open("wb") as f:
                    f.truncate(image.stat().st_size)
                made[name].append((seat, ns, disk))
        for name, hosts in made.items():
            jobs = app.jobs().restore_room(
                name, name, actor="test", options={"transport": transport}
            )
            by_host = {j.host_name: j for j in jobs}
            for seat, ns, disk in hosts:
                job = by_host[seat]
                room.seats.append(SeatProc(seat, ns, job, app.jobs().token(job.id), disk))
        app.start()
    except BaseException:
        room.close()
        raise
    return room
