"""Shared by the client's interop tests: a live appliance (the real HTTP app under
cheroot, in its own process so tests can kill and restart it), images imported with the
real importer, jobs created through the real Jobs API, and the real client run as a
process against a sparse file or loop device."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from appliance import db
from appliance.config import Layout
from appliance.jobs import Job, Jobs
from appliance.machines import Inventory
from appliance.store import Store
from appliance.store.importer import import_image

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
MAC = "52:54:00:12:34:56"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_disk(path: Path, size: int, *, seed: int = 1, data_fraction: float = 0.5) -> None:
    """A GPT disk file: a partition table, random (incompressible) and text-like
    (compressible) data in some 1 MiB blocks, zeros elsewhere (holes)."""
    rng = random.Random(seed)
    with path.open("wb") as f:
        f.truncate(size)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(path)], check=True, capture_output=True)
    with path.open("r+b") as f:
        for block in range(2, size // MIB - 1):
            if rng.random() < data_fraction:
                f.seek(block * MIB)
                if rng.random() < 0.5:
                    f.write(rng.randbytes(MIB))
                else:
                    f.write((b"slate %d " % block) * (MIB // 16) + bytes(MIB - (MIB // 16) * 16))


def change_chunks(path: Path, fraction: float, chunk: int = 4 * MIB, seed: int = 7) -> list[int]:
    """Overwrite one 4 KiB piece in ``fraction`` of the chunks; returns their indexes."""
    rng = random.Random(seed)
    count = path.stat().st_size // chunk
    picked = sorted(rng.sample(range(count), max(1, int(count * fraction))))
    with path.open("r+b") as f:
        for i in picked:
            f.seek(i * chunk + 8192)
            f.write(rng.randbytes(4096))
    return picked


class ServedHome:
    """A data directory with an image and a host, served by a separate process."""

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        wrap: list[str] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.layout = Layout(home)
        self.conn = db.connect(self.layout.db)
        self.host = host
        self.wrap = wrap or []  # e.g. `ip netns exec NS` to serve inside a namespace
        self.extra = extra or []  # more arguments of `python -m appliance.http`
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        Inventory(self.conn).add_host(MAC, "pc1", actor="test")

    def import_disk(self, path: Path, name: str = "lab") -> None:
        import_image(Store(self.layout), [path], name)

    def jobs(self) -> Jobs:
        return Jobs(self.conn, self.layout)

    def restore_job(self, image: str = "lab", **options: object) -> tuple[Job, str]:
        job = self.jobs().restore("pc1", image, actor="test", options=dict(options))
        return job, self.jobs().token(job.id)

    def capture_job(self, image: str) -> tuple[Job, str]:
        job = self.jobs().capture("pc1", image, actor="test")
        return job, self.jobs().token(job.id)

    def job(self, job_id: int) -> Job:
        return self.jobs().get(job_id)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *self.wrap,
                sys.executable,
                "-m",
                "appliance.http",
                str(self.home),
                self.host,
                str(self.port),
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"appliance did not start: {line!r}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self.conn.close()

    def __enter__(self) -> ServedHome:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_argv(
    url: str, job: Job, token: str, disk: Path | str, *extra: str, python: str = sys.executable
) -> list[str]:
    return [
        python,
        "-m",
        "bootimage.client",
        "--url",
        url,
        "--job",
        str(job.id),
        "--token",
        token,
        "--disk",
        str(disk),
        "--after",
        "none",
        "--no-console",
        *extra,
    ]


def run_client(
    url: str, job: Job, token: str, disk: Path | str, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        client_argv(url, job, token, disk, *extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def fetched_chunks(log: str) -> int:
    """How many chunk downloads the appliance served (from the client's own summary)."""
    for line in log.splitlines():
        if "MiB written" in line:
            return int(line.split("verified, ")[1].split(" MiB")[0].replace(",", ""))
    raise AssertionError(f"no summary line in the client log:\n{log}")


def log_lines(app: ServedHome, job_id: int) -> list[str]:
    return [
        row["line"] if isinstance(row, dict) else str(row) for row in app.jobs().log_lines(job_id)
    ]


def wait_for(predicate, timeout: float = 60.0, step: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(step)


__all__ = ["MIB", "ServedHome", "change_chunks", "json", "make_disk", "os", "run_client"]


def attach(path: Path, offset: int = 0, size: int = 0, *, sector: int = 512) -> str:
    cmd = ["losetup", "--find", "--show", "--offset", str(offset), "--sector-size", str(sector)]
    if size:
        cmd += ["--sizelimit", str(size)]
    return subprocess.run(
        [*cmd, str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def detach(dev: str) -> None:
    subprocess.run(["losetup", "--detach", dev], capture_output=True, check=False)


def make_partitioned_disk(path: Path, mnt: Path) -> dict[str, bytes]:
    """A 128 MiB GPT disk: 1 = ext4 (64 MiB, ~10 MiB of files), 2 = FAT (16 MiB, one
    file), 3 = a partition of no known filesystem (8 MiB of random bytes).  Returns the
    files written, by name."""
    with path.open("wb") as f:
        f.truncate(128 * MIB)
    subprocess.run(
        [
            "sgdisk",
            "-n1:2048:+64M",
            "-t1:8300",
            "-n2:0:+16M",
            "-t2:0700",
            "-n3:0:+8M",
            "-t3:8300",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    rng = random.Random(3)
    files = {f"f{i}.bin": rng.randbytes(2 * MIB) for i in range(5)}
    fat_file = rng.randbytes(MIB)
    mnt.mkdir(parents=True, exist_ok=True)
    ext = attach(path, MIB, 64 * MIB)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", ext], check=True)
        subprocess.run(["mount", ext, str(mnt)], check=True)
        try:
            for name, data in files.items():
                (mnt / name).write_bytes(data)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(ext)
    fat = attach(path, 65 * MIB, 16 * MIB)
    try:  # mtools: this host's kernel has no vfat driver to mount with
        subprocess.run(["mkfs.vfat", fat], check=True, capture_output=True)
        subprocess.run(["mcopy", "-i", fat, "-", "::/fat.bin"], input=fat_file, check=True)
    finally:
        detach(fat)
    with path.open("r+b") as f:
        f.seek(81 * MIB)
        f.write(rng.randbytes(8 * MIB))
    return {**files, "fat.bin": fat_file}


def read_fat_file(path: Path, offset: int, size: int, name: str) -> bytes:
    dev = attach(path, offset, size)
    try:
        return subprocess.run(
            ["mcopy", "-i", dev, f"::/{name}", "-"], capture_output=True, check=True
        ).stdout
    finally:
        detach(dev)


def read_files(path: Path, mnt: Path, offset: int, size: int, names: list[str]) -> dict[str, bytes]:
    dev = attach(path, offset, size)
    try:
        subprocess.run(["mount", "-o", "ro", dev, str(mnt)], check=True)
        try:
            return {n: (mnt / n).read_bytes() for n in names}
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(dev)
