"""Roomcast against Slate's unicast HTTP path and udpcast, in one run, under identical
links: namespaces on one snooping bridge, every seat's port and the appliance's port
shaped by tbf (default 20 Mbit/s each: at that rate 32 Python receivers and the bridge's
32 copies of every datagram fit on 2 cores — at 40 Mbit/s they did not, and 32 seats took
2.4 x one; the appliance's link is as fast as one seat's, as a 1 GbE appliance is to
1 GbE PCs), roomcast at 90 % of it.  Each run restores the same image onto every seat; every seat is
checked byte for byte against the image.

Rows (medians of --runs):
* T_N / T_1 for N seats (roomcast, HTTP, udpcast; HTTP up to --http-max-seats, as its
  time is N x T_1 and 32 seats of it would take most of the run), and appliance bytes /
  compressed image bytes (the appliance's eth0 tx counter: data, headers, beacons, repairs, HTTP).
  Roomcast twice: cold (each seat's interpreter starts at the go, so 32 seats' start-up,
  ~0.07 CPU-s each, queues on these 2 cores) and loaded (each seat has imported the
  client before the go, as a classroom machine has on its own CPU by the time it asks
  for its job).  The seats run Debian's python3, as the boot environment does.
* one half-rate seat among 8 (the others' time against a room without it), a late joiner
  at 0.5 x T1 (done - t_join, in T1), 1 % loss on every port (against loss-free), a delta
  room (each seat 5 % different chunks; against the full room).
* unshaped on a veth (one seat, --unshaped-mib): sender goodput, sender and receiver CPU
  seconds per GiB, beside the HTTP path's.

* a real school (issue 29): a forger on the VLAN in the room of 8, 2 of 12 seats at a
  quarter of the rate, two rooms of different images started together (beside udpcast,
  two sessions on the same links); ``--school`` runs only these and the unshaped row.

    python bench/room_bench.py [--seats 1,4,8,16,32] [--runs 3] [--quick] [--school]

Run it alone: it takes the two cores (``--quick`` is what the interop tier runs).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))

from _common import median
from client_kit import MIB, ROOT, change_chunks, log_lines, make_disk
from room_kit import Room, boot_python, make_room, make_rooms

from appliance.formats.roomwire import MAX_DATAGRAM, PIECE_SIZE
from appliance.store import Store

SUMMARY = re.compile(r"roomcast: ([\d,]+) MiB by multicast, ([\d,]+) MiB by HTTP")


def tx_bytes(room: Room) -> int:
    """What the appliance's eth0 has sent, as frames on an Ethernet wire (see wire_bytes)."""
    stats = "/sys/class/net/eth0/statistics/"
    out = room.lab.hosts["srv"].run(["cat", stats + "tx_bytes", stats + "tx_packets"]).stdout
    nbytes, packets = (int(x) for x in out.split())
    return wire_bytes(nbytes, packets)


def wire_bytes(nbytes: int, packets: int) -> int:
    """A veth's tx counters as Ethernet frames: a UDP_SEGMENT (or TSO) send crosses it as
    one packet of up to 40 datagrams with one set of headers, which a NIC sends as 40
    frames — so every DATAGRAM bytes of payload count one more set of headers.  (udpcast
    sends one datagram per packet: its counters are its frames already.)"""
    payload = nbytes - HEADERS * packets
    return nbytes + HEADERS * max(0, -(-payload // DATAGRAM) - packets)


def netns_tx(pid: int, dev: str = "eth0") -> tuple[int, int]:
    """(bytes, packets) sent by ``dev`` in the network namespace of process ``pid`` (no
    process spawned)."""
    for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == dev:
            fields = counters.split()
            return int(fields[8]), int(fields[9])
    raise SystemExit(f"no {dev} in the namespace of process {pid}")


# What a veth counts per packet besides its payload: one Ethernet, IPv4 and UDP header.  A
# UDP_SEGMENT send crosses a veth as one packet of up to 40 datagrams with one set of
# headers, so its tx_bytes are nearly all payload (a NIC puts 40 frames on the wire).
HEADERS = 14 + 20 + 8
FORGER = str(Path(__file__).resolve().parent.parent / "tests" / "interop" / "forger.py")
PIECE, DATAGRAM = PIECE_SIZE, MAX_DATAGRAM  # frame bytes per datagram (roomwire)


class TxSampler(threading.Thread):
    """The appliance's tx counters every 20 ms, for the goodput of the transfer itself: the
    rate over the middle 90 % of the bytes, without the client's start-up and its tail."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int, int]] = []  # (time, bytes, packets)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.samples.append((time.monotonic(), *netns_tx(self.pid)))

    def stop(self) -> None:
        self.done.set()
        self.join()

    def when(self, share: float) -> float:
        """The time the byte counter had moved ``share`` of its whole way."""
        return self._at(share)[0]

    def _at(self, share: float) -> tuple[float, int, int]:
        base, total = self.samples[0][1], self.samples[-1][1] - self.samples[0][1]
        return next(s for s in self.samples if s[1] - base >= share * total)

    def middle(self) -> tuple[float, float]:
        """(Mbit/s as the veth counts them, Mbit/s of UDP payload) over the middle 90 %."""
        self.stop()
        (t0, b0, p0), (t1, b1, p1) = self._at(0.05), self._at(0.95)
        seconds = max(t1 - t0, 1e-6)
        return (b1 - b0) * 8 / seconds / 1e6, (b1 - b0 - HEADERS * (p1 - p0)) * 8 / seconds / 1e6


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compile_client() -> None:
    """Byte-compile the client, as the boot environment ships it (bootimage/builder/build.py):
    with PYTHONDONTWRITEBYTECODE set, each of 32 seats would compile its modules again at
    every start, 0.04 CPU-s each on these 2 cores."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", "bootimage", "appliance",
                    sysconfig.get_paths()["purelib"]],
                   cwd=root, check=True, stdout=subprocess.DEVNULL)  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        compile_client()
        self.image = work / "master.img"
        make_disk(self.image, args.image_mib * MIB, data_fraction=0.9)
        self.zst = work / "master.img.zst"
        subprocess.run(["zstd", "-q", "-3", "-T0", "-f", str(self.image), "-o", str(self.zst)],
                       check=True)  # fmt: skip
        self.compressed = 0
        self.rate = f"{args.seat_mbit * 0.9:.0f}M"
        self.n = 0
        # The seats run the client as the boot environment does: Debian's python3 with the
        # client on PYTHONPATH (the venv's interpreter starts in 0.016 CPU-s, its editable
        # install's path finder included, Debian's in 0.008).
        self.python = boot_python() or sys.executable

    def room(self, seats: int, transport: str = "multicast", **kw: object) -> Room:
        self.n += 1
        tmp = self.work / f"run{self.n}"
        tmp.mkdir()
        room = make_room(tmp, self.image, seats, rate=self.rate, seat_mbit=self.args.seat_mbit,
                         transport=transport, python=self.python, **kw)  # fmt: skip
        room.lab.hosts["srv"].run(["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                                   "rate", f"{self.args.seat_mbit}mbit", "burst", "64kb",
                                   "latency", "50ms"])  # fmt: skip
        if not self.compressed:
            store = Store(room.app.layout)
            manifest = store.resolve("lab")
            self.compressed = sum(store.chunk_path(d).stat().st_size for d in manifest.digests())
        return room

    def restore(
        self,
        seats: int,
        transport: str = "multicast",
        prepare: Callable[[Room], None] | None = None,
        late: float | None = None,
        loaded: bool = False,
        forger: bool = False,
    ) -> dict[str, object]:
        """One room restore: (seconds until the last seat is done, per-seat seconds,
        appliance bytes, multicast/HTTP MiB per seat).  ``forger``: a machine on the
        bridge sends every forgery of tests/interop/forger.py at 2,500 datagrams a second
        from the first join to the end."""
        room = self.room(seats, transport)
        evil: Forger | None = None
        try:
            if prepare is not None:
                prepare(room)
            if forger:
                # As in issue 29's trial: forgeries worth ~8 % of a seat's link (there
                # 2,000 a second on 50 Mbit/s links); this forger's mix averages ~1 KB.
                evil = Forger(room, max(100.0, self.args.seat_mbit * 1e6 * 0.08 / 8 / 1000))
            before = tx_bytes(room)
            assert room.app.proc is not None
            sampler = TxSampler(room.app.proc.pid)
            sampler.start()
            first = room.seats if late is None else room.seats[:-1]
            start = room.start_together(first, loaded=loaded)
            if late is not None:
                time.sleep(late)
                room.start(room.seats[-1])
            # Every seat's end is taken as it exits; the disks are compared afterwards (a
            # comparison between two waits stamped the later seats ~0.15 s late each).
            for s, rc in zip(room.seats, room.wait_all(timeout=1800), strict=True):
                if rc != 0 or not filecmp.cmp(self.image, s.disk, shallow=False):
                    raise SystemExit(f"{s.name} failed (rc {rc}):\n{s.out[-3000:]}")
            took = max(s.ended for s in room.seats) - start
            forged = evil.stop() if evil is not None else 0
            forged_mbit = evil.mbit if evil is not None else 0.0
            sampler.stop()
            split = [SUMMARY.search(s.out) for s in room.seats]
            return {
                "seconds": took,
                # where the time went: until 1 % of the bytes had left the appliance (the
                # seats' start-up, all on these 2 cores), from 1 % to 99 % (the sending),
                # and from there until the last seat was done (its last chunks, the end)
                "startup": sampler.when(0.01) - start,
                "sending": sampler.when(0.99) - sampler.when(0.01),
                "tail": start + took - sampler.when(0.99),
                "seat_seconds": [s.ended - start for s in room.seats],
                "late_seconds": room.seats[-1].ended - room.seats[-1].started,
                "appliance_bytes": tx_bytes(room) - before,
                "mcast_mib": [int(m.group(1).replace(",", "")) if m else 0 for m in split],
                "http_mib": [int(m.group(2).replace(",", "")) if m else 0 for m in split],
                "forged_sent": forged,
                "forged_mbit": forged_mbit,
                "fell_back": sum("going HTTP-only" in s.out for s in room.seats),
            }
        finally:
            if evil is not None:
                evil.stop()
            room.close()

    def udpcast(self, seats: int) -> dict[str, object]:
        room = self.room(seats)
        try:
            room.app.stop()  # only udpcast on the link
            before = tx_bytes(room)
            srv = room.lab.hosts["srv"]
            start = time.monotonic()
            rx = [
                s.ns.popen(["udp-receiver", "--interface", "eth0", "--nokbd", "--pipe",
                            "zstd -d -q", "--file", str(s.disk)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for s in room.seats
            ]  # fmt: skip
            tx = srv.popen(["udp-sender", "--interface", "eth0", "--nokbd", "--file",
                            str(self.zst), "--min-receivers", str(seats), "--max-bitrate",
                            self.rate.lower(), "--no-progress"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            for p in rx:
                p.wait(timeout=1800)
            took = time.monotonic() - start
            tx.wait(timeout=60)
            for s in room.seats:
                if not filecmp.cmp(self.image, s.disk, shallow=False):
                    raise SystemExit(f"udpcast: {s.name}'s disk differs")
            return {"seconds": took, "appliance_bytes": tx_bytes(room) - before}
        finally:
            room.close()

    def unshaped(self, transport: str) -> dict[str, float]:
        """One seat on an unshaped veth; CPU seconds of the appliance and the seat.  Roomcast
        runs at 1000 Mbit/s, a 1 GbE link's line rate: what its sender can put on such a
        link (the goal is 940 Mbit/s of goodput: datagrams, whose payload a 1 GbE link
        carries at most 957 Mbit/s of).  The veth's counters see a UDP_SEGMENT send as one
        packet: the payload is its bytes less one header set per packet (TxSampler)."""
        big = self.work / "big.img"
        if not big.exists():
            make_disk(big, self.args.unshaped_mib * MIB, data_fraction=0.9)
        self.n += 1
        tmp = self.work / f"run{self.n}"
        tmp.mkdir()
        room = make_room(tmp, big, 1, rate="1000M", seat_mbit=None, transport=transport,
                         python=self.python)  # fmt: skip
        try:
            assert room.app.proc is not None
            pid = room.app.proc.pid
            sampler = TxSampler(pid)
            sampler.start()
            cpu0, tx0, start = proc_cpu(pid), tx_bytes(room), time.monotonic()
            s = room.seats[0]
            room.start(s)
            assert s.proc is not None
            _, status, usage = os.wait4(s.proc.pid, 0)
            took = time.monotonic() - start
            s.out = s.proc.stdout.read() if s.proc.stdout else ""
            s.proc.returncode = os.waitstatus_to_exitcode(status)
            if s.proc.returncode != 0 or not filecmp.cmp(big, s.disk, shallow=False):
                raise SystemExit(f"unshaped {transport} failed:\n{s.out[-3000:]}")
            gib = big.stat().st_size / 2**30
            wire = tx_bytes(room) - tx0
            veth, payload = sampler.middle()
            image_share = PIECE / DATAGRAM if transport == "multicast" else 1
            return {
                "seconds": took,
                "disk_mbit": big.stat().st_size * 8 / took / 1e6,
                "wire_mbit": wire * 8 / took / 1e6,
                "middle_veth_mbit": veth,
                # while sending: the UDP (or TCP) payload, and for roomcast the image's own
                # bytes in it (PIECE of every DATAGRAM: the rest is roomwire's header)
                "middle_payload_mbit": payload,
                "middle_goodput_mbit": payload * image_share,
                # the same payload as Ethernet frames (a header set per datagram)
                "middle_mbit": payload * ((DATAGRAM + HEADERS) / DATAGRAM),
                "appliance_cpu_per_wire_gib": (proc_cpu(pid) - cpu0) / (wire / 2**30),
                "appliance_cpu_per_gib": (proc_cpu(pid) - cpu0) / gib,
                "seat_cpu_per_gib": (usage.ru_utime + usage.ru_stime) / gib,
            }
        finally:
            room.close()


class Forger(threading.Thread):
    """A student's PC on the bridge (tests/interop/forger.py): it waits for the room's
    first join, then sends forgeries to the session's group until stopped."""

    def __init__(self, room: Room, rate: float) -> None:
        super().__init__(daemon=True)
        self.room, self.rate = room, rate
        self.ns = room.lab.add_host("evil", "10.83.0.250/24")
        self.proc: subprocess.Popen[str] | None = None
        self.done = threading.Event()
        self.sent = 0
        self.mbit = 0.0  # what it sent, in Mbit/s of UDP payload
        self.start()

    def run(self) -> None:
        joined = re.compile(r"roomcast: joined session ([0-9a-f]{8}) \(([0-9.]+):(\d+)")
        while not self.done.wait(0.1):
            for s in self.room.seats:
                for line in log_lines(self.room.app, s.job.id):
                    m = joined.search(line)
                    if m:
                        sid, group, port = str(int(m.group(1), 16)), m.group(2), m.group(3)
                        argv = [sys.executable, FORGER, sid, group, port, "10.83.0.250",
                                str(self.rate)]  # fmt: skip
                        self.proc = self.ns.popen(argv, stdout=subprocess.PIPE,
                                                  stderr=subprocess.DEVNULL, text=True,
                                                  cwd=str(ROOT))  # fmt: skip
                        return

    def stop(self) -> int:
        self.done.set()
        self.join()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            got = json.loads(out or "{}")
            self.sent = int(got.get("sent", 0))
            self.mbit = got.get("bytes", 0) * 8 / max(got.get("seconds", 1), 0.1) / 1e6
        return self.sent


def two_rooms(b: Bench, images: dict[str, Path], seats: int = 3) -> dict[str, float]:
    """Two rooms of ``seats`` seats restoring different images through one appliance whose port
    is as fast as a seat's, each room alone and then both started together: each room's
    time together / alone.  Beside them udpcast, two sessions on the same links."""

    def run(names: list[str]) -> dict[str, float]:
        b.n += 1
        tmp = b.work / f"run{b.n}"
        tmp.mkdir()
        room = make_rooms(tmp, {n: images[n] for n in names}, seats, rate=b.rate,
                          srv_mbit=b.args.seat_mbit, seat_mbit=b.args.seat_mbit,
                          transport="multicast", python=b.python)  # fmt: skip
        try:
            go = room.start_together(room.seats, loaded=True)
            codes = room.wait_all(timeout=1800)
            for s, rc in zip(room.seats, codes, strict=True):
                image = images[s.name.rsplit("-", 1)[0]]
                if rc != 0 or not filecmp.cmp(image, s.disk, shallow=False):
                    raise SystemExit(f"two rooms: {s.name} failed (rc {rc}):\n{s.out[-3000:]}")
            return {n: max(s.ended for s in room.seats if s.name.startswith(n + "-")) - go
                    for n in names}  # fmt: skip
        finally:
            room.close()

    def udpcast(names: list[str]) -> dict[str, float]:
        b.n += 1
        tmp = b.work / f"run{b.n}"
        tmp.mkdir()
        room = make_rooms(tmp, {n: images[n] for n in names}, seats, rate=b.rate,
                          srv_mbit=b.args.seat_mbit, seat_mbit=b.args.seat_mbit)  # fmt: skip
        try:
            room.app.stop()
            srv = room.lab.hosts["srv"]
            start = time.monotonic()
            procs: dict[str, list[subprocess.Popen[bytes]]] = {}
            for i, n in enumerate(names):
                zst = b.work / f"{n}.zst"
                if not zst.exists():
                    subprocess.run(["zstd", "-q", "-3", "-T0", "-f", str(images[n]), "-o",
                                    str(zst)], check=True)  # fmt: skip
                port = str(9000 + 10 * i)
                procs[n] = [
                    s.ns.popen(["udp-receiver", "--interface", "eth0", "--nokbd", "--portbase",
                                port, "--pipe", "zstd -d -q", "--file", str(s.disk)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for s in room.seats if s.name.startswith(n + "-")
                ]  # fmt: skip
                srv.popen(["udp-sender", "--interface", "eth0", "--nokbd", "--portbase", port,
                           "--file", str(zst), "--min-receivers", str(seats), "--max-bitrate",
                           b.rate.lower(), "--no-progress"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            took = {}
            for n, rx in procs.items():
                for p in rx:
                    p.wait(timeout=1800)
                took[n] = time.monotonic() - start
            return took
        finally:
            room.close()

    names = list(images)
    alone = {n: median([run([n])[n] for _ in range(b.args.runs)]) for n in names}
    together = [run(names) for _ in range(b.args.runs)]
    both = {n: median([t[n] for t in together]) for n in names}
    u_alone = {n: udpcast([n])[n] for n in names}
    u_both = udpcast(names)
    return {
        **{f"alone_{n}": alone[n] for n in names},
        **{f"together_{n}": both[n] for n in names},
        "sum_alone": sum(alone.values()),
        **{f"udpcast_alone_{n}": u_alone[n] for n in names},
        **{f"udpcast_together_{n}": u_both[n] for n in names},
    }


def med(results: list[dict[str, object]], key: str) -> float:
    return median([float(r[key]) for r in results])  # type: ignore[arg-type]


def scaling_rows(args: argparse.Namespace, b: Bench, counts: list[int],
                 figures: dict[str, object]) -> float:  # fmt: skip
    """T_N / T_1 for each room size (roomcast cold and loaded, udpcast, HTTP); T_1."""
    rows: dict[str, dict[int, float]] = {
        "roomcast": {}, "loaded": {}, "http": {}, "udpcast": {}
    }  # fmt: skip
    bytes_ratio: dict[str, dict[int, float]] = {k: {} for k in rows}
    parts: dict[int, tuple[float, float, float]] = {}
    for n in counts:
        rc = [b.restore(n) for _ in range(args.runs)]
        parts[n] = (med(rc, "startup"), med(rc, "sending"), med(rc, "tail"))
        rl = [b.restore(n, loaded=True) for _ in range(args.runs)]
        uc = [b.udpcast(n) for _ in range(args.runs)]
        http_runs = args.http_runs if n <= args.http_max_seats else 0
        ht = [b.restore(n, "unicast") for _ in range(http_runs)]
        for name, res in (("roomcast", rc), ("loaded", rl), ("udpcast", uc), ("http", ht)):
            if res:
                rows[name][n] = med(res, "seconds")
                bytes_ratio[name][n] = med(res, "appliance_bytes") / b.compressed
        r, lo, u = rows["roomcast"][n], rows["loaded"][n], rows["udpcast"][n]
        h = f"{rows['http'][n]:6.1f} s" if n in rows["http"] else "  (not run)"
        print(f"  N={n:>2}: roomcast {r:6.1f} s (loaded {lo:6.1f} s), udpcast {u:6.1f} s,"
              f" HTTP {h}", flush=True)  # fmt: skip
    t1, l1 = rows["roomcast"][counts[0]], rows["loaded"][counts[0]]
    print(f"\n{'seats':>5} {'roomcast T_N/T_1':>17} {'loaded':>7} {'HTTP T_N/T_1':>13} "
          f"{'udpcast T_N/T_1':>16} {'bytes/compressed: roomcast':>27} {'HTTP':>6} "
          f"{'udpcast':>8}")  # fmt: skip
    h1, u1 = rows["http"].get(counts[0], 0.0), rows["udpcast"][counts[0]]
    for n in counts:
        ran = n in rows["http"] and h1 > 0
        ht_ratio = f"{rows['http'][n] / h1:>13.2f}" if ran else f"{'-':>13}"
        ht_bytes = f"{bytes_ratio['http'][n]:>6.2f}" if ran else f"{'-':>6}"
        print(f"{n:>5} {rows['roomcast'][n] / t1:>17.2f} {rows['loaded'][n] / l1:>7.2f}"
              f" {ht_ratio} {rows['udpcast'][n] / rows['udpcast'][counts[0]]:>16.2f} "
              f"{bytes_ratio['roomcast'][n]:>27.2f} {ht_bytes} "
              f"{bytes_ratio['udpcast'][n]:>8.2f}")  # fmt: skip
    print(f"  (T_1: roomcast {t1:.1f} s, loaded {l1:.1f} s, HTTP {h1:.1f} s, udpcast"
          f" {u1:.1f} s; goal T32 <= 1.2 x T1, bytes <= 1.1.  Seats run {b.python}, as"
          " the boot environment does.  roomcast: every seat's interpreter starts at the"
          " go, all N on these 2 cores; loaded: each seat has imported the client before"
          " the go, as a machine that booted on its own CPU has)\n")  # fmt: skip
    print("where roomcast's time went (medians): until 1 % of the bytes had left the"
          " appliance (the seats' start-up: N Python clients on these 2 cores), from 1 %"
          " to 99 % (the sending), and from there until the last seat was done")  # fmt: skip
    print(f"{'seats':>5} {'start-up s':>11} {'sending s':>10} {'sending / T_1 sending':>22}"
          f" {'tail s':>7}")  # fmt: skip
    for n in counts:
        up, send, tail = parts[n]
        print(f"{n:>5} {up:>11.2f} {send:>10.2f} {send / parts[counts[0]][1]:>22.2f}"
              f" {tail:>7.2f}")  # fmt: skip
    print()
    figures.update(times=rows, bytes_ratio=bytes_ratio, roomcast_parts=parts)
    return t1


def room_rows(args: argparse.Namespace, b: Bench, m: int, t_m: float, t1: float,
              figures: dict[str, object]) -> None:  # fmt: skip
    """A room of ``m``: one half-rate seat, a late joiner, 1 % loss, a delta room."""

    def slow(room: Room) -> None:
        room.shape(room.seats[-1].name, args.seat_mbit / 2)

    with_slow = [b.restore(m, prepare=slow) for _ in range(args.runs)]
    others = median([max(r["seat_seconds"][:-1]) for r in with_slow])  # type: ignore[index]
    slow_seat = median([r["seat_seconds"][-1] for r in with_slow])  # type: ignore[index]
    late = [b.restore(m, late=0.5 * t1) for _ in range(args.runs)]
    late_t = median([float(r["late_seconds"]) for r in late])  # type: ignore[arg-type]

    def lossy(room: Room) -> None:
        room.loss([s.name for s in room.seats], 1.0)

    loss = [b.restore(m, prepare=lossy) for _ in range(args.runs)]

    def delta(room: Room) -> None:
        for i, s in enumerate(room.seats):
            shutil.copyfile(b.image, s.disk)
            change_chunks(s.disk, 0.05, seed=30 + i)

    dl = [b.restore(m, prepare=delta) for _ in range(args.runs)]
    print(f"  one half-rate seat: the others {others / t_m:.3f} x T (goal <= 1.05); the slow"
          f" seat {slow_seat:.1f} s, verified")  # fmt: skip
    print(f"  late joiner at 0.5 x T1: done {late_t / t1:.2f} x T1 after it joined (goal <= 1.15)")
    print(f"  1 % loss on every port: {med(loss, 'seconds') / t_m:.3f} x loss-free (goal <= 1.1)")
    print(f"  delta room (5 % of the chunks differ per seat): {med(dl, 'seconds') / t_m:.3f}"
          f" x the full room; appliance bytes {med(dl, 'appliance_bytes') / b.compressed:.2f}"
          " x the compressed image")  # fmt: skip
    figures.update(room=m, t_room=t_m, half_rate_others=others / t_m, slow_seat=slow_seat,
                   late_joiner=late_t / t1, loss=med(loss, "seconds") / t_m,
                   delta=med(dl, "seconds") / t_m)  # fmt: skip


def unshaped_rows(args: argparse.Namespace, b: Bench, figures: dict[str, object]) -> None:
    """One seat on an unshaped veth: roomcast and HTTP goodput and CPU per GiB."""
    mc = b.unshaped("multicast")
    hp = b.unshaped("unicast")
    print(f"\nunshaped veth, one seat, {args.unshaped_mib} MiB:")
    print("  (Mbit/s over the whole client run, start-up included, and while sending: the"
          " middle 90 % of the bytes; CPU-s per GiB of disk data, and the appliance's per"
          " GiB it sent; roomcast set to 1000 Mbit/s)")  # fmt: skip
    for name, f in (("roomcast", mc), ("HTTP", hp)):
        if name == "roomcast":
            print(f"  {name:<9} {f['middle_mbit']:5.0f} Mbit/s of Ethernet frames while sending"
                  f" = {f['middle_payload_mbit']:.0f} Mbit/s of datagrams (goal >= 940),"
                  f" {f['middle_goodput_mbit']:.0f} of image data")  # fmt: skip
        else:
            print(f"  {name:<9} {f['middle_mbit']:5.0f} Mbit/s of Ethernet frames while sending"
                  " (an estimate: TCP headers are larger)")  # fmt: skip
        print(f"  {'':<9} {f['wire_mbit']:5.0f} Mbit/s sent ({f['disk_mbit']:5.0f} of disk),"
              f" appliance {f['appliance_cpu_per_gib']:.2f} CPU-s/GiB"
              f" ({f['appliance_cpu_per_wire_gib']:.2f} per GiB sent), seat"
              f" {f['seat_cpu_per_gib']:.2f} CPU-s/GiB")  # fmt: skip
    figures.update(unshaped_roomcast=mc, unshaped_http=hp)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seats", default="1,4,8,16,32")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--http-runs", type=int, default=1, help="runs of the HTTP rows (slow)")
    p.add_argument("--seat-mbit", type=float, default=20)
    p.add_argument("--http-max-seats", type=int, default=8, help="largest room of the HTTP row")
    p.add_argument("--image-mib", type=int, default=64)
    p.add_argument("--unshaped-mib", type=int, default=512)
    p.add_argument("--quick", action="store_true", help="1 and 2 seats, one run, small image")
    p.add_argument("--school", action="store_true",
                   help="only the rows of a real school (issue 29): a forger in a room of 8, two"
                   " quarter-rate seats of 12, two rooms at once (beside udpcast); and the"
                   " unshaped row")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    # Stopped (kill, Ctrl-C): leave through the finally blocks, which remove the namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.seats, args.runs, args.image_mib, args.unshaped_mib = "1,2", 1, 16, 32
    counts = [int(x) for x in args.seats.split(",")]
    work = Path(tempfile.mkdtemp(prefix="room-bench-"))
    figures: dict[str, object] = {"seat_mbit": args.seat_mbit}
    try:
        b = Bench(args, work)
        print(f"image {args.image_mib} MiB, seats and appliance at {args.seat_mbit:.0f} Mbit/s, "
              f"roomcast at {b.rate}bit/s; medians of {args.runs}", flush=True)  # fmt: skip
        if not args.school:
            t1 = scaling_rows(args, b, counts, figures)
        m = 8 if not args.quick else 2
        base = [b.restore(m) for _ in range(args.runs)]
        t_m = med(base, "seconds")

        print(f"room of {m} (T = {t_m:.1f} s):")
        if not args.school:
            room_rows(args, b, m, t_m, t1, figures)

        forged = [b.restore(m, forger=True) for _ in range(args.runs)]
        print(f"  a forger on the VLAN (every forgery of tests/interop/forger.py from the first"
              f" join, {med(forged, 'forged_mbit'):.1f} Mbit/s):"
              f" {med(forged, 'seconds') / t_m:.3f} x without it (goal <= 1.1);"
              f" {median([float(r['forged_sent']) for r in forged]):.0f} sent,"  # type: ignore[arg-type]
              f" seats gone HTTP-only {max(int(r['fell_back']) for r in forged)}")  # type: ignore[call-overload]  # fmt: skip
        q = 12 if not args.quick else 3
        plain = [b.restore(q, loaded=True) for _ in range(args.runs)]
        fast = q - (2 if q >= 12 else 1)

        def quarter(room: Room) -> None:
            for s in room.seats[fast:]:
                room.shape(s.name, args.seat_mbit / 4)

        pair = [b.restore(q, prepare=quarter, loaded=True) for _ in range(args.runs)]
        fast_alone = median([max(r["seat_seconds"][:fast]) for r in plain])  # type: ignore[index]
        fast_with = median([max(r["seat_seconds"][:fast]) for r in pair])  # type: ignore[index]
        slow_t = median([max(r["seat_seconds"][fast:]) for r in pair])  # type: ignore[index]
        print(f"  {q - fast} of {q} seats at a quarter of the rate: the {fast} others"
              f" {fast_with / fast_alone:.3f} x their time without them (goal <= 1.05); the"
              f" slow ones {slow_t:.1f} s, verified")  # fmt: skip
        figures.update(forger=med(forged, "seconds") / t_m, slow_pair=fast_with / fast_alone)

        second = b.work / "second.img"
        make_disk(second, args.image_mib * MIB, seed=77, data_fraction=0.9)
        per_room = 3 if not args.quick else 1
        tr = two_rooms(b, {"r1": b.image, "r2": second}, per_room)
        print(f"  two rooms of {per_room}, different images, started together (appliance port"
              f" as fast as a seat's): room 1 {tr['together_r1'] / tr['alone_r1']:.2f} x alone,"
              f" room 2 {tr['together_r2'] / tr['alone_r2']:.2f} x alone; the later one"
              f" {max(tr['together_r1'], tr['together_r2']) / tr['sum_alone']:.2f} x the sum"
              f" of their times alone (goal <= 1.1).  udpcast, two sessions: room 1"
              f" {tr['udpcast_together_r1'] / tr['udpcast_alone_r1']:.2f} x, room 2"
              f" {tr['udpcast_together_r2'] / tr['udpcast_alone_r2']:.2f} x alone")  # fmt: skip
        figures.update(two_rooms=tr)

        unshaped_rows(args, b, figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
