"""Benchmark of the restore/capture client (bootimage.client), each figure against a
baseline measured in the same run (medians of --runs, default 3):

1. restore on loopback vs ``curl -s URL | zstd -d | dd of=T bs=4M`` of the same data
   (one zstd file served by the same HTTP server), verification on — goal >= 1.0x —
   for several targets T: a block device (a loop device on a RAM-backed file, as fast
   as a good SSD here), a file on this machine's disk, a file in RAM.  The client
   fsyncs before it reports done, so where T is durable the baseline gets
   ``conv=fsync`` too; the issue's literal command (no fsync) is a row of its own;
2. restore through a 1 Gbit/s link (tc tbf on a veth between namespaces): compressed
   bytes per second vs the line rate — goal >= 95 % — and vs ``curl`` of one file on
   the same link (what one TCP stream carries there);
3. delta restore of a disk that differs in 5 % of its chunks vs a full restore onto a
   zeroed disk, both onto the block device — goal <= 15 % of the time — through the
   1 Gbit/s link (the LAN a restore runs on) and on loopback;
4. capture of a disk whose ext4 filesystem is 25 % used vs ``dd`` of the whole disk.

Run as root from the repository root:  .venv/bin/python bench/client_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Row, median, print_rows

from appliance import db
from appliance.config import Layout
from appliance.formats.chunkio import hash_chunk, is_zero
from appliance.jobs import Jobs
from appliance.lab.netns import Lab
from appliance.machines import Inventory
from appliance.store import Store
from appliance.store.importer import import_image
from bootimage.builder import initscript

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
MAC = "52:54:00:be:0c:01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_disk(path: Path, size: int, incompressible: float = 0.5) -> None:
    """Mixed content: random blocks, text-like blocks, and 10 % zero blocks."""
    rng = random.Random(5)
    with path.open("wb") as f:
        for block in range(size // MIB):
            r = rng.random()
            if r < 0.1:
                f.seek((block + 1) * MIB)
                continue
            if r < 0.1 + 0.9 * incompressible:
                f.write(rng.randbytes(MIB))
            else:
                f.write((b"block %08d of the bench disk; " % block) * (MIB // 32))
        f.truncate(size)


def drop_cache(path: Path) -> None:
    """Forget one file's cached pages (not the whole machine's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class Server:
    def __init__(self, home: Path, host: str = "127.0.0.1", wrap: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        argv = [
            *(wrap or []),
            sys.executable,
            "-m",
            "appliance.http",
            str(home),
            host,
            str(self.port),
            "--file",
            f"/baseline.zst={home / 'baseline.zst'}",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def cpu(self) -> float:
        """CPU seconds (user + system) the appliance process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds used by this process's finished children (client, pipeline)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hash_seconds(source: Path, chunk: int = 4 * MIB) -> float:
    """One core's time to SHA-256 the image's data chunks: what a verified restore
    must spend that the baseline pipeline never does."""
    total = 0.0
    with source.open("rb") as f:
        while data := f.read(chunk):
            if not is_zero(data):
                start = time.perf_counter()
                hash_chunk(data)
                total += time.perf_counter() - start
    return total


def with_cpu(server: Server, run: Callable[..., float], *args: Any) -> tuple[float, float]:
    """(seconds ``run(*args)`` says it took, CPU seconds it cost this process's
    children and the appliance)."""
    cpu = children_cpu() + server.cpu()
    took = run(*args)
    return took, children_cpu() + server.cpu() - cpu


class Bench:
    def __init__(self, work: Path, size: int, runs: int, workers: int = 8) -> None:
        self.work, self.size, self.runs, self.workers = work, size, runs, workers
        self.home = work / "home"
        self.home.mkdir()
        self.layout = Layout(self.home)
        self.conn = db.connect(self.layout.db)
        Inventory(self.conn).add_host(MAC, "bench1", actor="bench")
        self.jobs = Jobs(self.conn, self.layout)
        self.images: set[str] = set()
        self.last_log = ""

    def image(self, name: str, source: Path) -> None:
        """Import ``source`` as image ``name`` (once: later calls reuse it)."""
        if name not in self.images:
            import_image(Store(self.layout), [source], name)
            self.images.add(name)

    def job(self, action: str, image: str) -> tuple[int, str]:
        if action == "restore":
            job = self.jobs.restore("bench1", image, actor="bench")
        else:
            job = self.jobs.capture("bench1", image, actor="bench")
        return job.id, self.jobs.token(job.id)

    def client(
        self,
        url: str,
        image: str,
        disk: Path,
        action: str = "restore",
        wrap: list[str] | None = None,
    ) -> float:
        job_id, token = self.job(action, image)
        argv = [
            *(wrap or []),
            sys.executable,
            "-m",
            "bootimage.client",
            "--url",
            url,
            "--job",
            str(job_id),
            "--token",
            token,
            "--disk",
            str(disk),
            "--after",
            "none",
            "--no-console",
            "--workers",
            str(self.workers),
        ]
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"client failed:\n{proc.stderr[-2000:]}")
        self.last_log = proc.stderr
        if os.environ.get("BENCH_VERBOSE"):
            print(proc.stderr, file=sys.stderr)
        return took

    def fresh(self, path: Path) -> Path:
        path.unlink(missing_ok=True)
        with path.open("wb") as f:
            f.truncate(self.size)
        return path


@contextlib.contextmanager
def ram_disk(size: int) -> Iterator[Path]:
    """A block device in RAM: a loop device on a file in /dev/shm."""
    fd, name = tempfile.mkstemp(prefix="slate-bench-", dir="/dev/shm")
    os.ftruncate(fd, size)
    os.close(fd)
    dev = subprocess.run(
        ["losetup", "--find", "--show", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield Path(dev)
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)
        os.unlink(name)


def blank(dev: Path) -> Path:
    """Zero a RAM disk (on tmpfs a discard punches holes: it reads back as zeros)."""
    subprocess.run(["blkdiscard", "--force", str(dev)], check=True, capture_output=True)
    return dev


def put(source: Path, dev: Path, changed: float) -> Path:
    """``dev`` holds ``source`` with ``changed`` of its chunks altered."""
    subprocess.run(
        ["dd", f"if={source}", f"of={dev}", "bs=4M", "conv=fsync", "status=none"], check=True
    )
    change(dev, changed)
    return dev


def pipeline(url: str, target: Path, conv: str) -> float:
    cmd = f"curl -s {url}/baseline.zst | zstd -d -q | dd of={target} bs=4M {conv} status=none"
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return time.perf_counter() - start


def bench_loopback(b: Bench, source: Path) -> list[Row]:
    b.image("loop", source)
    subprocess.run(
        ["zstd", "-q", "-3", "-T1", "-f", str(source), "-o", str(b.home / "baseline.zst")],
        check=True,
    )
    server = Server(b.home)
    on_disk = b.work / "target.img"
    shm = Path(tempfile.mkdtemp(prefix="slate-bench-", dir="/dev/shm"))
    in_ram = shm / "target.img"
    times: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        times.setdefault(key, []).append(value)

    try:
        with ram_disk(b.size) as dev:
            for _ in range(b.runs):
                add("dev", b.client(server.url, "loop", blank(dev)))
                add("dev base", pipeline(server.url, blank(dev), "conv=fsync"))
                add("disk", b.client(server.url, "loop", b.fresh(on_disk)))
                add("disk base", pipeline(server.url, b.fresh(on_disk), "conv=notrunc,fsync"))
                add("disk base nosync", pipeline(server.url, b.fresh(on_disk), "conv=notrunc"))
                target = b.fresh(in_ram)
                took, cpu = with_cpu(server, b.client, server.url, "loop", target)
                add("ram", took)
                add("ram cpu", cpu)
                target = b.fresh(in_ram)
                took, cpu = with_cpu(server, pipeline, server.url, target, "conv=notrunc")
                add("ram base", took)
                add("ram base cpu", cpu)
            for _ in range(b.runs):
                add("delta", b.client(server.url, "loop", put(source, dev, 0.05)))
    finally:
        server.stop()
        shutil.rmtree(shm, ignore_errors=True)
    mb = b.size / MIB
    m = {k: median(v) for k, v in times.items()}
    return [
        Row(
            "restore, loopback, to a block device (MiB/s)",
            mb / m["dev"],
            mb / m["dev base"],
            "MiB/s",
            ">= 1.0x",
        ),
        Row(
            "restore, loopback, to a file on disk (MiB/s)",
            mb / m["disk"],
            mb / m["disk base"],
            "MiB/s",
            ">= 1.0x",
        ),
        Row(
            "  same, baseline dd without fsync (MiB/s)",
            mb / m["disk"],
            mb / m["disk base nosync"],
            "MiB/s",
            ">= 1.0x",
        ),
        Row(
            "restore, loopback, to a file in RAM (MiB/s)",
            mb / m["ram"],
            mb / m["ram base"],
            "MiB/s",
            ">= 1.0x",
        ),
        Row(
            "  CPU-s of it: client+appliance vs pipeline+appliance",
            m["ram cpu"],
            m["ram base cpu"],
            "CPU-s",
            higher_is_better=False,
        ),
        Row(
            "  sha256 of the data alone, 1 core, vs that baseline (s)",
            hash_seconds(source),
            m["ram base"],
            "s",
            higher_is_better=False,
        ),
        Row(
            "delta restore 5 %, loopback, vs full (s)",
            m["delta"],
            m["dev"],
            "s",
            "<= 0.15x",
            higher_is_better=False,
        ),
    ]


def change(path: Path, fraction: float, chunk: int = 4 * MIB) -> None:
    rng = random.Random(9)
    size = (
        os.stat(path).st_size
        if path.is_file()
        else int(
            subprocess.run(
                ["blockdev", "--getsize64", str(path)], capture_output=True, text=True, check=True
            ).stdout
        )
    )
    count = size // chunk
    with path.open("r+b") as f:
        for i in rng.sample(range(count), max(1, int(count * fraction))):
            f.seek(i * chunk + 4096)
            f.write(rng.randbytes(4096))
        f.flush()
        os.fsync(f.fileno())


def fetch_rate(log: str) -> float:
    """MiB/s of compressed bytes the client says it fetched while restoring (from its
    first chunk request to the fsync: process start-up, job and manifest excluded)."""
    found = re.search(r"MiB fetched at ([\d,.]+) MiB/s", log)
    if found is None:
        raise SystemExit(f"no transfer rate in the client's log:\n{log[-1000:]}")
    return float(found.group(1).replace(",", ""))


def set_mtu(lab: Lab, mtu: int) -> None:
    """Every link of the lab (bridge, veth ends, the hosts' eth0) at ``mtu``."""
    names = lab.net.run(["ip", "-o", "link", "show"]).stdout.split("\n")
    for name in [n.split(": ")[1].split("@")[0] for n in names if ": " in n]:
        if name != "lo":
            lab.net.run(["ip", "link", "set", name, "mtu", str(mtu)])
    for host in lab.hosts.values():
        host.run(["ip", "link", "set", "eth0", "mtu", str(mtu)])


def bench_link(b: Bench, source: Path, size: int) -> list[Row]:
    """Restores through a 1 Gbit/s link onto the RAM block device: the line rate at a
    normal and a jumbo MTU, then delta vs full restore at the normal one."""
    noise = b.work / "random.img"
    rng = random.Random(3)
    with noise.open("wb") as f:
        for _ in range(size // MIB):
            f.write(rng.randbytes(MIB))
    b.image("link", noise)
    b.image("loop", source)  # the delta rows restore the loopback image
    stored = Store(b.layout).stored_size(Store(b.layout).resolve("link").digests())
    line = 1e9 / 8 / MIB
    rows = []
    for mtu in (1500, 9000):
        with Lab() as lab:
            srv = lab.add_host("srv", "10.98.0.1/24")
            cli = lab.add_host("c1", "10.98.0.2/24")
            for key, value in initscript.SYSCTLS.items():  # as the boot environment
                cli.run(["sysctl", "-q", "-w", f"{key}={value}"])
            set_mtu(lab, mtu)
            tbf = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1gbit"]
            srv.run([*tbf, "burst", "1mb", "latency", "20ms"])
            server = Server(b.home, "10.98.0.1", srv.argv([]))
            shutil.copyfile(noise, b.home / "baseline.zst")  # random: compressed = size
            wrap = cli.argv([])
            times: dict[str, list[float]] = {}
            try:
                with ram_disk(max(size, b.size)) as dev:
                    for _ in range(b.runs):
                        times.setdefault("link", []).append(
                            b.client(server.url, "link", blank(dev), wrap=wrap)
                        )
                        times.setdefault("phase", []).append(fetch_rate(b.last_log))
                        start = time.perf_counter()
                        cli.run(["curl", "-s", "-o", "/dev/null", f"{server.url}/baseline.zst"])
                        times.setdefault("curl", []).append(time.perf_counter() - start)
                    if mtu == 1500:
                        for _ in range(b.runs):
                            times.setdefault("full", []).append(
                                b.client(server.url, "loop", blank(dev), wrap=wrap)
                            )
                            times.setdefault("delta", []).append(
                                b.client(server.url, "loop", put(source, dev, 0.05), wrap=wrap)
                            )
            finally:
                server.stop()
        m = {k: median(v) for k, v in times.items()}
        # What TCP/IPv4 carries at this MTU: 40 header bytes, 52 with the timestamp
        # option; tbf on a veth also counts the 14-byte Ethernet header.
        stamps = initscript.SYSCTLS.get("net.ipv4.tcp_timestamps") != "0"
        ceiling = line * (mtu - (52 if stamps else 40)) / (mtu + 14)
        rate = stored / MIB / m["link"]
        rows += [
            Row(f"restore via 1 Gbit/s tbf, MTU {mtu} (MiB/s)", rate, line, "MiB/s", ">= 0.95x"),
            Row(
                "  same, transfer only (client's own figure)",
                median(times["phase"]),
                line,
                "MiB/s",
                ">= 0.95x",
            ),
            Row(f"  same vs TCP payload ceiling at MTU {mtu}", rate, ceiling, "MiB/s"),
            Row("  same vs curl of one file on that link", rate, size / MIB / m["curl"], "MiB/s"),
        ]
        if "delta" in m:
            rows.append(
                Row(
                    "delta restore 5 % via 1 Gbit/s vs full (s)",
                    m["delta"],
                    m["full"],
                    "s",
                    "<= 0.15x",
                    higher_is_better=False,
                )
            )
    return rows


def capture_disk(b: Bench, path: Path, size: int, used: int) -> None:
    """A GPT disk of ``size`` whose one ext4 partition holds ``used`` bytes of files."""
    with path.open("wb") as f:
        f.truncate(size)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(path)], check=True, capture_output=True)
    loop = subprocess.run(
        ["losetup", "--find", "--show", "--offset", str(MIB), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    mnt = b.work / "mnt"
    mnt.mkdir(exist_ok=True)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", loop], check=True)
        subprocess.run(["mount", loop, str(mnt)], check=True)
        rng = random.Random(4)
        for i in range(used // (4 * MIB)):
            (mnt / f"f{i}").write_bytes(rng.randbytes(4 * MIB))
        subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "--detach", loop], check=False)


def bench_capture(b: Bench, size: int) -> list[Row]:
    """Captures of a ``size`` disk whose ext4 is 25 % used, and of a 4x larger one."""
    disk, big = b.work / "capture.img", b.work / "capture-4x.img"
    capture_disk(b, disk, size, size // 4)
    capture_disk(b, big, 4 * size, size // 4)  # 4x the disk, the same used data
    server = Server(b.home)
    try:
        caps, bigs, dds = [], [], []
        for _ in range(b.runs):
            drop_cache(disk)
            caps.append(b.client(server.url, "cap", disk, action="capture"))
            drop_cache(big)
            bigs.append(b.client(server.url, "cap4", big, action="capture"))
            drop_cache(disk)
            start = time.perf_counter()
            subprocess.run(["dd", f"if={disk}", "of=/dev/null", "bs=4M", "status=none"], check=True)
            dds.append(time.perf_counter() - start)
    finally:
        server.stop()
    # The first capture of an image uploads every chunk; later ones only what changed.
    again, again_big = caps[1:] or caps, bigs[1:] or bigs
    return [
        Row(
            "first capture, 25 % used, vs dd of the disk (s)",
            caps[0],
            median(dds),
            "s",
            "time vs a full read",
            higher_is_better=False,
        ),
        Row(
            "re-capture (chunks known) vs dd of the disk (s)",
            median(again),
            median(dds),
            "s",
            "time vs a full read",
            higher_is_better=False,
        ),
        Row(
            "re-capture of a 4x larger disk, same data (s)",
            median(again_big),
            median(again),
            "s",
            "~1.0x: grows with used data",
            higher_is_better=False,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (tests)")
    parser.add_argument("--size", type=int, default=512, help="disk size in MiB")
    parser.add_argument(
        "--link-size",
        type=int,
        default=1024,
        help="MiB of random data sent through the 1 Gbit/s link (the client's start-up, "
        "~0.15 s, is part of every figure: a short transfer would mostly measure it)",
    )
    parser.add_argument(
        "--capture-size",
        type=int,
        default=2048,
        help="MiB of the captured disk (25 %% of it used; at 512 MiB the fixed costs of a "
        "capture - start-up, partclone, the commit - are most of the time)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="client worker threads")
    parser.add_argument(
        "--only",
        choices=("loopback", "link", "capture"),
        action="append",
        help="run only this part (repeatable; default: all three)",
    )
    args = parser.parse_args()
    size = (32 if args.quick else args.size) * MIB
    runs = 1 if args.quick else args.runs
    if os.geteuid() != 0:
        raise SystemExit("client_bench needs root (namespaces, loop devices)")
    with tempfile.TemporaryDirectory(prefix="slate-client-bench-", dir="/var/tmp") as tmp:
        b = Bench(Path(tmp), size, runs, args.workers)
        source = Path(tmp) / "source.img"
        make_disk(source, size)
        rows = []
        parts = {
            "loopback": lambda: bench_loopback(b, source),
            "link": lambda: bench_link(b, source, (32 if args.quick else args.link_size) * MIB),
            "capture": lambda: bench_capture(b, (32 if args.quick else args.capture_size) * MIB),
        }
        for name, part in parts.items():
            if args.only and name not in args.only:
                continue
            rows += part()
            print_rows(rows, f"(so far: {len(rows)} figure(s))")
            sys.stdout.flush()
    title = f"client bench: {size // MIB} MiB disks, {args.workers} workers, medians of {runs}"
    print_rows(rows, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
