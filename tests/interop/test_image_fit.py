"""``slate image fit`` (issue 13): an ext4 image and an NTFS image fitted to a smaller
disk restore onto it with the real client — filesystem check clean, files identical —
and what cannot be fitted is refused with the reason.  The original version's restore
onto the smaller disk names the command that makes a version that fits."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from client_kit import MIB, ROOT, ServedHome, attach, detach, log_lines, read_files, run_client

from appliance.store import Store
from appliance.store import policy as policies

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mount)")
BIG, SMALL = 128 * MIB, 80 * MIB


def slate(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", "--home", str(home), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip


def part2(path: Path) -> tuple[int, int]:
    out = subprocess.run(["sgdisk", "-i", "2", str(path)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    first = int(out.split("First sector: ")[1].split()[0])
    last = int(out.split("Last sector: ")[1].split()[0])
    return first * 512, (last - first + 1) * 512


def make_disk(path: Path, fs: str, files: dict[str, bytes]) -> None:
    """128 MiB GPT: partition 1 ext4 (8 MiB), partition 2 ``fs`` to the end, holding files."""
    with path.open("wb") as f:
        f.truncate(BIG)
    code = "8300" if fs == "ext4" else "0700"
    subprocess.run(["sgdisk", "-n1:2048:+8M", "-t1:8300", "-n2:0:0", f"-t2:{code}", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    dev = attach(path, MIB, 8 * MIB)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    finally:
        detach(dev)
    dev = attach(path, *part2(path))
    try:
        if fs == "ext4":
            subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
            mnt = path.parent / "mnt"
            mnt.mkdir(exist_ok=True)
            subprocess.run(["mount", dev, str(mnt)], check=True)
            try:
                for name, data in files.items():
                    (mnt / name).write_bytes(data)
            finally:
                subprocess.run(["umount", str(mnt)], check=True)
        else:
            subprocess.run(["mkntfs", "-Q", "-F", "-L", "win", dev], check=True,
                           capture_output=True)  # fmt: skip
            for name, data in files.items():
                src = path.parent / name
                src.write_bytes(data)
                subprocess.run(["ntfscp", "-f", dev, str(src), name], check=True,
                               capture_output=True)  # fmt: skip
    finally:
        detach(dev)


def ntfs_files(path: Path, names: list[str]) -> dict[str, bytes]:
    dev = attach(path, *part2(path))
    try:
        return {n: subprocess.run(["ntfscat", dev, n], capture_output=True, check=True).stdout
                for n in names}  # fmt: skip
    finally:
        detach(dev)


def fs_check(path: Path, fs: str) -> subprocess.CompletedProcess[str]:
    dev = attach(path, *part2(path))
    try:
        cmd = ["e2fsck", "-f", "-n", dev] if fs == "ext4" else ["ntfsfix", "--no-action", dev]
        return subprocess.run(cmd, capture_output=True, text=True)
    finally:
        detach(dev)


@pytest.mark.parametrize("fs", ["ext4", "ntfs"])
def test_a_fitted_version_restores_onto_the_smaller_disk(tmp_path: Path, fs: str) -> None:
    rng = random.Random(fs)
    files = {f"f{i}.bin": rng.randbytes(4 * MIB) for i in range(5)}  # 20 MiB of data
    source = tmp_path / "master.img"
    make_disk(source, fs, files)
    small = tmp_path / "small.img"
    with small.open("wb") as f:
        f.truncate(SMALL)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        original = Store(app.layout).resolve("lab")
        if fs == "ntfs":  # the image's promotion rule decides what the new version is
            policies.put(app.conn, policies.ImagePolicy("lab", auto_promote=True))
        # The original version does not fit, and the restore says what does.
        job, token = app.restore_job()
        proc = run_client(app.url, job, token, small)
        ended = app.job(job.id)
        assert ended.state == "failed"
        assert f"slate image fit {original.ref} --size {SMALL}" in ended.reason, ended.reason
        before = small.read_bytes()
        assert before == bytes(SMALL)  # refused before a byte was written

        out = slate(app.home, "image", "fit", original.ref, "--size", f"{SMALL}", "--json")
        assert out.returncode == 0, out.stderr
        made = json.loads(out.stdout)
        assert made["from"] == original.ref and made["size"] == SMALL
        assert made["promoted"] is (fs == "ntfs")
        fitted = Store(app.layout).load("lab", made["version"])
        assert fitted.disks[0].size == SMALL
        # Deduplicated: only the chunks the resize changed were stored.
        data, old = fitted.disks[0].digests(), original.disks[0].digests()
        assert made["new_chunks"] == len(data - old), made
        assert data & old, "no chunk shared with the original"

        job, token = app.restore_job(f"lab@{made['version']}")
        proc = run_client(app.url, job, token, small)
        assert proc.returncode == 0, proc.stderr
        assert app.job(job.id).state == "done", log_lines(app, job.id)
    check = fs_check(small, fs)
    assert check.returncode == 0, check.stdout + check.stderr
    verify = subprocess.run(["sgdisk", "-v", str(small)], capture_output=True, text=True)
    assert "No problems found" in verify.stdout, verify.stdout
    start, size = part2(small)
    assert start + size <= SMALL - 33 * 512
    if fs == "ext4":
        mnt = tmp_path / "mnt"
        assert read_files(small, mnt, start, size, list(files)) == files
    else:
        assert ntfs_files(small, list(files)) == files


def test_what_cannot_be_fitted_is_refused_with_the_reason(tmp_path: Path) -> None:
    rng = random.Random(5)
    files = {f"f{i}.bin": rng.randbytes(4 * MIB) for i in range(10)}  # 40 MiB of data
    source = tmp_path / "master.img"
    make_disk(source, "ext4", files)
    raw = tmp_path / "raw.img"  # last partition: no filesystem
    with raw.open("wb") as f:
        f.truncate(64 * MIB)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(raw)], check=True,
                   capture_output=True)  # fmt: skip
    xfs = tmp_path / "xfs.img"  # last partition: xfs, which cannot shrink at all
    with xfs.open("wb") as f:
        f.truncate(320 * MIB)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(xfs)], check=True,
                   capture_output=True)  # fmt: skip
    dev = attach(xfs, MIB, 318 * MIB)
    try:
        subprocess.run(["mkfs.xfs", "-q", "-f", dev], check=True, capture_output=True)
    finally:
        detach(dev)
    bare = tmp_path / "bare.img"  # no partition table: one ext4 on the whole disk
    with bare.open("wb") as f:
        f.truncate(32 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(bare)], check=True)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        app.import_disk(raw, "raw")
        app.import_disk(xfs, "xfs")
        app.import_disk(bare, "bare")
        store = Store(app.layout)
        ref = store.resolve("lab").ref
        out = slate(app.home, "image", "fit", ref, "--size", "40MiB")
        assert out.returncode != 0
        assert "the data does not fit: partition 2" in out.stderr, out.stderr
        out = slate(app.home, "image", "fit", store.resolve("raw").ref, "--size", "32MiB")
        assert out.returncode != 0
        assert "not a filesystem Slate can resize" in out.stderr, out.stderr
        out = slate(app.home, "image", "fit", store.resolve("xfs").ref, "--size", "300MiB")
        assert out.returncode != 0
        assert "(partition 1, xfs) is not a filesystem Slate can resize" in out.stderr, out.stderr
        out = slate(app.home, "image", "fit", store.resolve("bare").ref, "--size", "16MiB")
        assert "has no partition table: there is no last partition" in out.stderr, out.stderr
        out = slate(app.home, "image", "fit", ref, "--size", "9MiB")  # partition 2 starts at 9
        assert out.returncode != 0
        assert "is too small for" in out.stderr and "its last partition starts" in out.stderr
        assert "the ones before it must fit" in out.stderr, out.stderr  # the hint
        out = slate(app.home, "image", "fit", ref, "--size", "200MiB")
        assert "already fits" in out.stderr, out.stderr
        out = slate(app.home, "image", "fit", ref, "--size", "eighty")
        assert "is not a size" in out.stderr, out.stderr
        assert len(store.version_ids("lab")) == 1  # nothing was committed
        assert not list((store.root / "tmp").iterdir())  # nor left behind


def test_a_hibernated_windows_volume_is_not_fitted(tmp_path: Path) -> None:
    """ntfsresize alone would shrink it; the saved session would then resume onto a
    filesystem that moved under it.  Fast Startup leaves the same header."""
    source = tmp_path / "master.img"
    make_disk(source, "ntfs", {"f.bin": b"x" * MIB, "hiberfil.sys": b"HIBR" + bytes(8188)})
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        store = Store(app.layout)
        out = slate(app.home, "image", "fit", store.resolve("lab").ref, "--size", f"{SMALL}")
        assert out.returncode != 0
        assert "partition 2 of lab@" in out.stderr, out.stderr
        assert "is a hibernated or Fast-Startup Windows volume" in out.stderr
        assert "powercfg /h off" in out.stderr  # the hint
        assert len(store.version_ids("lab")) == 1  # nothing was committed
        assert not list((store.root / "tmp").iterdir())  # nor left behind
