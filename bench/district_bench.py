"""District library benchmark (issue 30): three schools behind shaped WAN links, one bucket.

A real SeaweedFS in its own namespace (tests/interop/district_kit.py), a publishing
appliance "hq" and three schools (s1, s2, s3), each behind its own tbf-shaped WAN link
(50 Mbit/s by default); WAN bytes are the links' own counters.  In the same run, beside
Slate, the baselines on the same links:

* ``rclone copy`` (Debian's rclone) of the library's store directory (its chunks and
  manifests, from the same bucket) to a school's disk;
* a FOG-style whole-image copy: the version as one raw image file, ``rsync
  --whole-file`` from an rsync daemon at the district (FOG's replicator copies whole
  image files).

Cases (medians of ``--runs``), each printed as WAN bytes / bytes the school truly lacked
(the compressed chunks its store did not hold) and, for the transfers, the link's use
(wire bytes / (WAN rate x wall time)):

* the first version, and a version with 5 % of its chunks changed (the school has v1);
* a cold room of ``--seats`` seats at a school that has not fetched the version
  (read-through): WAN fetches per unique chunk, and the room's time against the WAN
  transfer time + 1.2 x one seat's LAN restore of the same version, ready;
* the three schools fetching at once: what the bucket sends / 3 x the version;
* a fetch capped at 20 Mbit/s: the rate in each ``--window``-second window (wire bytes).

Goals (issue 30): WAN bytes <= 1.05 x lacked; prefetch at >= 0.95 x the WAN's rate and
not slower than rclone; the cold room one WAN fetch per chunk and done within WAN time +
1.2 x one seat; three at once <= 3 x 1.05 x; the cap within +-5 %.

    python bench/district_bench.py [--runs 3] [--image-mib 256] [--seats 30] [--quick]

Run it alone: it takes the two cores (``--quick`` is what the interop tier runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))

from _common import median
from client_kit import MIB, ROOT, change_chunks, make_disk
from district_kit import DISTRICT, District
from district_room import room_seats, school_room
from room_kit import SeatProc

from appliance.config import Layout
from appliance.store import Store

SCHOOLS = ("s1", "s2", "s3")
IMAGE = "lab"
RSYNC_PORT = 8730
CAP_MBIT = 20


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.rate = args.wan_mbit * 1e6  # bit/s
        self.district = District(work / "district", schools=("hq", *SCHOOLS),
                                 wan_mbit=args.wan_mbit)  # fmt: skip
        self.hq = work / "hq"
        self.rsyncd: subprocess.Popen[bytes] | None = None

    # -- appliances ------------------------------------------------------------------
    def slate(self, ns: str, home: Path, *argv: str) -> str:
        cmd = [sys.executable, "-m", "appliance.cli", "--home", str(home), *argv]
        done = self.district.run_in(ns, cmd, cwd=str(ROOT))
        if done.returncode != 0:
            raise RuntimeError(f"{ns}: slate {' '.join(argv)}: {done.stdout}{done.stderr}")
        return done.stdout

    def publish_versions(self) -> None:
        a = self.args
        disk = self.work / "v1.img"
        make_disk(disk, a.image_mib * MIB, seed=70, data_fraction=0.9)
        self.v1 = self.slate(
            "hq", self.hq, "image", "import", str(disk), "--name", IMAGE, "--format", "raw"
        ).strip()
        creds = str(self.district.credentials_file("publisher"))
        self.slate("hq", self.hq, "library", "add", "district", "s3://library", "--endpoint",
                   self.district.endpoint, "--credentials", creds, "--publisher")  # fmt: skip
        self.slate("hq", self.hq, "library", "publish", f"{IMAGE}@{self.v1}")
        self.fingerprint = json.loads(self.slate("hq", self.hq, "library", "key", "--json"))[
            "fingerprint"
        ]
        disk2 = self.work / "v2.img"
        shutil.copyfile(disk, disk2)
        change_chunks(disk2, 0.05, seed=71)
        self.v2 = self.slate(
            "hq", self.hq, "image", "import", str(disk2), "--name", IMAGE, "--format", "raw"
        ).strip()
        # v2 is published later: the first-version cases see a library of v1 only.
        self.images = {"v1.img": disk, "v2.img": disk2}
        store = Store(Layout(self.hq))
        self.m1 = store.load(IMAGE, self.v1)
        self.m2 = store.load(IMAGE, self.v2)
        self.v1_bytes = self.compressed(self.m1.digests())
        self.v2_new = self.compressed(self.m2.digests() - self.m1.digests())

    def compressed(self, digests: object) -> int:
        store = Store(Layout(self.hq))
        return sum(store.chunk_path(d).stat().st_size for d in digests)  # type: ignore[attr-defined]

    def school(self, ns: str) -> Path:
        """A fresh school appliance at ``ns`` with the library added (trusting hq)."""
        home = self.work / f"home-{ns}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        creds = str(self.district.credentials_file(ns))
        self.slate(ns, home, "library", "add", "district", "s3://library", "--endpoint",
                   self.district.endpoint, "--credentials", creds, "--trust",
                   self.fingerprint)  # fmt: skip
        return home

    # -- counters --------------------------------------------------------------------
    def rx(self, ns: str) -> int:
        return self.district.wan_rx_bytes(ns)

    def bucket_tx(self) -> int:
        out = self.district.district.run(["cat", "/sys/class/net/eth0/statistics/tx_bytes"])
        return int(out.stdout)

    def measured(self, ns: str, fn: object) -> tuple[int, float]:
        """(WAN bytes into ``ns``, wall seconds) of ``fn()``."""
        before, start = self.rx(ns), time.monotonic()
        fn()  # type: ignore[operator]
        return self.rx(ns) - before, time.monotonic() - start

    # -- baselines -------------------------------------------------------------------
    def rclone(self, ns: str, dest: Path) -> None:
        access, secret = self.district.credentials(ns)
        cmd = ["rclone", "copy", ":s3:library", str(dest), "--s3-provider", "Other",
               "--s3-endpoint", self.district.endpoint, "--s3-access-key-id", access,
               "--s3-secret-access-key", secret, "--s3-region", "us-east-1",
               "--s3-force-path-style", "--config", "/dev/null"]  # fmt: skip
        # rclone 1.60's S3 client cannot take AWS_CA_BUNDLE with its own transport.
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        done = self.district.run_in(ns, cmd, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"rclone: {done.stderr[-2000:]}")

    def start_rsyncd(self) -> None:
        share = self.work / "fog"
        share.mkdir()
        for name, path in self.images.items():
            os.link(path, share / name)
        conf = self.work / "rsyncd.conf"
        conf.write_text(f"[images]\npath = {share}\nread only = yes\nuse chroot = no\n"
                        "uid = root\ngid = root\n")  # fmt: skip
        self.rsyncd = self.district.district.popen(
            ["rsync", "--daemon", "--no-detach", f"--config={conf}", f"--port={RSYNC_PORT}",
             f"--address={DISTRICT}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)

    def fog(self, ns: str, name: str, dest: Path) -> None:
        cmd = ["rsync", "--whole-file", f"rsync://{DISTRICT}:{RSYNC_PORT}/images/{name}",
               str(dest)]  # fmt: skip
        done = self.district.run_in(ns, cmd)
        if done.returncode != 0:
            raise RuntimeError(f"rsync: {done.stderr[-2000:]}")

    def close(self) -> None:
        if self.rsyncd is not None:
            self.rsyncd.terminate()
            self.rsyncd.wait(10)
        self.district.close()


def use(wire: int, seconds: float, rate: float) -> float:
    """The link's use: wire bytes / what the link could carry in ``seconds``."""
    return wire * 8 / (rate * seconds)


def transfer_rows(b: Bench, runs: int) -> dict[str, object]:
    """First version, then v2 (5 % changed), for Slate, rclone and the FOG-style copy."""
    slate1, rclone1, fog1, inner, sent = [], [], [], [], []
    for _ in range(runs):
        home = b.school("s1")
        got: list[str] = []
        tx = b.bucket_tx()
        slate1.append(b.measured("s1", lambda h=home, g=got: g.append(b.slate(  # type: ignore[misc]
            "s1", h, "library", "fetch", f"{IMAGE}@{b.v1}", "--json"))))  # fmt: skip
        sent.append(b.bucket_tx() - tx)
        inner.append(float(json.loads(got[0])["seconds"]))
        dest = b.work / "rclone-s1"
        shutil.rmtree(dest, ignore_errors=True)
        rclone1.append(b.measured("s1", lambda d=dest: b.rclone("s1", d)))  # type: ignore[misc]
        fogdest = b.work / "fog-s1"
        shutil.rmtree(fogdest, ignore_errors=True)
        fogdest.mkdir()
        fog1.append(b.measured("s1", lambda d=fogdest: b.fog("s1", "v1.img", d)))  # type: ignore[misc]
    lacked = b.v1_bytes
    print(f"first version ({lacked / MIB:.1f} MiB of compressed chunks, {b.args.image_mib} MiB"
          f" disk) over a {b.args.wan_mbit:g} Mbit/s WAN:")  # fmt: skip
    out: dict[str, object] = {}
    for name, rows in (("slate", slate1), ("rclone copy", rclone1), ("FOG-style rsync", fog1)):
        wan, secs = median([r[0] for r in rows]), median([r[1] for r in rows])
        print(f"  {name:16} WAN {wan / lacked:.3f} x what it lacked, {secs:5.1f} s = "
              f"{secs / (lacked * 8 / b.rate):.2f} x (lacked / WAN rate), link use"
              f" {use(int(wan), secs, b.rate):.3f}")  # fmt: skip
        out[name] = {"wan_ratio": wan / lacked, "seconds": secs}
    secs = median(inner)
    print(f"  slate's fetch itself (in `slate serve` a prefetch pays no interpreter start):"
          f" {secs:5.1f} s, {lacked * 8 / secs / b.rate:.3f} x the WAN rate in payload (goal"
          f" >= 0.95); the bucket sent {median(sent) / lacked:.3f} x (wire, with TCP's"
          f" retransmissions)")  # fmt: skip
    out["slate fetch"] = {"seconds": secs, "payload_rate": lacked * 8 / secs / b.rate,
                          "bucket_sent": median(sent) / lacked}  # fmt: skip
    s, r = out["slate"], out["rclone copy"]
    print(f"  slate / rclone time: the fetch {secs / r['seconds']:.2f} (goal <= 1), the CLI"  # type: ignore[index]
          f" with its interpreter and boto3's start {s['seconds'] / r['seconds']:.2f}")  # type: ignore[index]  # fmt: skip

    # v2: 5 % of the chunks changed; every school holds v1.
    b.slate("hq", b.hq, "library", "publish", f"{IMAGE}@{b.v2}")
    home = b.work / "home-s1"  # has v1 from the last run above
    s2 = b.measured("s1", lambda: b.slate("s1", home, "library", "fetch", f"{IMAGE}@{b.v2}"))
    r2 = b.measured("s1", lambda: b.rclone("s1", b.work / "rclone-s1"))
    f2 = b.measured("s1", lambda: b.fog("s1", "v2.img", b.work / "fog-s1"))
    new = b.v2_new
    print(f"a version with 5 % of its chunks changed ({new / MIB:.1f} MiB new):")
    for name, (wan, secs) in (("slate", s2), ("rclone copy", r2), ("FOG-style rsync", f2)):
        print(f"  {name:16} WAN {wan / new:.3f} x what it lacked, {secs:5.1f} s")
        out[f"{name} v2"] = {"wan_ratio": wan / new, "seconds": secs}
    return out


# What a seat says at its end ("roomcast: N MiB by multicast, M MiB by HTTP …") and
# when it leaves the group ("roomcast: going HTTP-only: why").
SEAT_SUMMARY = re.compile(r"roomcast: ([\d,]+) MiB by multicast, ([\d,]+) MiB by HTTP")
HTTP_ONLY = re.compile(r"roomcast: going HTTP-only: ([^(\n]*)")


def room_restore(b: Bench, home: Path, seats: int) -> tuple[float, int, str]:
    """Room lab1 of ``seats`` seats at s2 restores v1: (seconds to the last seat, WAN
    bytes, how the seats got their bytes: multicast and HTTP, and why any seat left the
    group)."""
    room = school_room(b.district, "s2", home, seats)
    try:
        before = b.rx("s2")
        b.slate("s2", home, "job", "restore", "--room", "lab1", "--image", f"{IMAGE}@{b.v1}")
        room_seats(room, Layout(home), b.work, b.images["v1.img"].stat().st_size)
        room.app.start()
        start = room.start_together(room.seats, loaded=True)
        codes = room.wait_all(timeout=900)
        bad = [s.name for s, c in zip(room.seats, codes, strict=True) if c != 0]
        if bad:
            raise RuntimeError(f"seats failed: {bad}: {room.seats[0].out[-1500:]}")
        return max(s.ended for s in room.seats) - start, b.rx("s2") - before, how(room.seats)
    finally:
        room.close()


def how(seats: list[SeatProc]) -> str:
    """ "N MiB by multicast, M by HTTP; k seats left the group: reason x count"."""
    mcast = http = 0
    left: dict[str, int] = {}
    for s in seats:
        if m := SEAT_SUMMARY.search(s.out):
            mcast += int(m.group(1).replace(",", ""))
            http += int(m.group(2).replace(",", ""))
        if m := HTTP_ONLY.search(s.out):
            why = re.sub(r"\d+(\.\d+)?", "N", m.group(1).strip())
            left[why] = left.get(why, 0) + 1
    reasons = "; ".join(f"{why} x{n}" for why, n in sorted(left.items())) or "none"
    return f"{mcast:,} MiB by multicast, {http:,} by HTTP; seats gone HTTP-only: {reasons}"


def cold_room(b: Bench, seats: int) -> dict[str, float | str]:
    """A room at s2 restores v1 it never fetched (read-through); then the same room and
    one seat restore it again, ready here (the LAN alone)."""
    home = b.school("s2")
    took, wan, cold_how = room_restore(b, home, seats)
    warm, _, warm_how = room_restore(b, home, seats)
    one, _, _ = room_restore(b, home, 1)
    wan_time = b.v1_bytes * 8 / b.rate
    print(f"a cold room of {seats} seats (read-through): WAN {wan / b.v1_bytes:.3f} x the"
          f" version (one fetch per chunk: <= 1.05); done in {took:.1f} s ="
          f" {took / (wan_time + 1.2 * one):.2f} x (WAN time {wan_time:.1f} s + 1.2 x one"
          f" seat's LAN restore {one:.1f} s) (goal <= 1); {took / warm:.2f} x the same room"
          f" with the version ready here ({warm:.1f} s: {seats} seats on this host's"
          f" cores)\n  cold: {cold_how}\n  warm: {warm_how}")  # fmt: skip
    return {"wan_ratio": wan / b.v1_bytes, "seconds": took, "warm": warm, "one_seat": one,
            "cold_how": cold_how, "warm_how": warm_how}  # fmt: skip


def three_at_once(b: Bench) -> float:
    homes = {ns: b.school(ns) for ns in SCHOOLS}
    before = b.bucket_tx()
    threads = [threading.Thread(target=b.slate, args=(ns, h, "library", "fetch",
                                                      f"{IMAGE}@{b.v1}"))
               for ns, h in homes.items()]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = b.bucket_tx() - before
    ratio = sent / (3 * b.v1_bytes)
    print(f"three schools fetching at once: the bucket sent {ratio:.3f} x 3 x the version"
          f" (goal <= 1.05)")  # fmt: skip
    return ratio


def capped(b: Bench, window: float, mib: int) -> dict[str, float]:
    """A fetch capped at CAP_MBIT of an incompressible image: the wire rate per window."""
    disk = b.work / "cap.img"
    with disk.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
    version = b.slate(
        "hq", b.hq, "image", "import", str(disk), "--name", "cap", "--format", "raw"
    ).strip()
    b.slate("hq", b.hq, "library", "publish", f"cap@{version}")
    home = b.school("s3")
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), b.rx("s3")))
            time.sleep(0.5)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        b.slate("s3", home, "library", "fetch", f"cap@{version}", "--cap", f"{CAP_MBIT}M")
    finally:
        done.set()
        t.join()
    # Windows inside the transfer (after its first second, before its last).
    moving = [(at, n) for (at, n), (_, prev) in zip(samples[1:], samples, strict=False)
              if n > prev]  # fmt: skip
    rates = []
    if moving:
        first, last = moving[0][0] + 1.0, moving[-1][0] - 1.0
        at = first
        while at + window <= last:
            inside = [(t0, n) for t0, n in samples if at <= t0 <= at + window]
            if len(inside) >= 2:
                rates.append((inside[-1][1] - inside[0][1]) * 8 / (inside[-1][0] - inside[0][0]))
            at += window
    cap = CAP_MBIT * 1e6
    if not rates:
        print(f"capped at {CAP_MBIT} Mbit/s: the transfer was shorter than a {window:g} s window")
        return {}
    print(f"capped at {CAP_MBIT} Mbit/s: {len(rates)} window(s) of {window:g} s at"
          f" {min(rates) / cap:.3f}..{max(rates) / cap:.3f} x the cap on the wire (goal"
          f" 0.95..1.05)")  # fmt: skip
    return {"min": min(rates) / cap, "max": max(rates) / cap}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--image-mib", type=int, default=256)
    p.add_argument("--wan-mbit", type=float, default=50)
    p.add_argument("--seats", type=int, default=30)
    p.add_argument("--window", type=float, default=60, help="seconds of each cap window")
    p.add_argument("--cap-mib", type=int, default=160, help="the capped fetch's image")
    p.add_argument("--quick", action="store_true", help="small image, one run, 3 seats")
    p.add_argument(
        "--cold-room",
        action="store_true",
        help="only the cold room, --runs times (median), with how seats got bytes",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.runs, args.image_mib, args.seats, args.window, args.cap_mib = 1, 16, 3, 1, 10
    work = Path(tempfile.mkdtemp(prefix="district-bench-"))
    figures: dict[str, object] = {"wan_mbit": args.wan_mbit}
    b = Bench(args, work)
    try:
        b.publish_versions()
        b.start_rsyncd()
        print(f"district: 3 schools, WAN {args.wan_mbit:g} Mbit/s each (tbf), SeaweedFS;"
              f" medians of {args.runs}", flush=True)  # fmt: skip
        if args.cold_room:
            rooms = [cold_room(b, args.seats) for _ in range(args.runs)]
            took = [float(r["seconds"]) for r in rooms]
            print(
                f"the cold room of {args.seats}, {len(rooms)} runs: "
                + ", ".join(f"{t:.1f}" for t in took)
                + f" s; median {median(took):.1f} s"
            )
            figures["cold_rooms"] = rooms
            if args.json:
                args.json.write_text(json.dumps(figures, indent=1))
            return 0
        figures["transfers"] = transfer_rows(b, args.runs)
        figures["cold_room"] = cold_room(b, args.seats)
        figures["three_at_once"] = three_at_once(b)
        figures["cap"] = capped(b, args.window, args.cap_mib)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
