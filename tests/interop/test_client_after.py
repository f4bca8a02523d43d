"""After the write (issue 13), with the real client against a live appliance on loopback
writing a sparse file: post-restore hooks (environment, mounts on ext4, NTFS, xfs, btrfs
and a second disk, order, a failing and a timed-out hook) and kept partitions (a file
survives two restores; a mismatched layout fails the job with the disk's bytes unchanged)."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest
from client_kit import (
    MAC,
    MIB,
    ROOT,
    ServedHome,
    attach,
    client_argv,
    detach,
    log_lines,
    read_files,
)

from appliance import hooks
from appliance.machines import Inventory
from appliance.store import Store
from appliance.store.importer import import_image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mount)")


def run(app: ServedHome, image: str, target: Path, mounts: Path) -> tuple[int, str, str]:
    """Restore ``image`` onto ``target``; (job id, final state, its reason)."""
    job, token = app.restore_job(image)
    env = {**os.environ, "SLATE_MOUNT_ROOT": str(mounts)}
    proc = subprocess.run(client_argv(app.url, job, token, target), capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env=env)  # fmt: skip
    ended = app.job(job.id)
    assert ended.state in ("done", "failed"), proc.stderr
    return job.id, ended.state, ended.reason


def ext4_disk(path: Path, mnt: Path, layout: list[str], files: dict[int, dict[str, bytes]]) -> None:
    """A 96 MiB GPT disk with ext4 partitions made by ``sgdisk layout`` and ``files`` in
    them (by partition number)."""
    with path.open("wb") as f:
        f.truncate(96 * MIB)
    subprocess.run(["sgdisk", *layout, str(path)], check=True, capture_output=True)
    for number, content in files.items():
        start, size = span(path, number)
        dev = attach(path, start, size)
        try:
            subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
            mnt.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", dev, str(mnt)], check=True)
            try:
                for name, data in content.items():
                    (mnt / name).write_bytes(data)
            finally:
                subprocess.run(["umount", str(mnt)], check=True)
        finally:
            detach(dev)


def span(path: Path, number: int) -> tuple[int, int]:
    """(start, size) in bytes of partition ``number`` (sgdisk -i)."""
    out = subprocess.run(["sgdisk", "-i", str(number), str(path)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    first = int(out.split("First sector: ")[1].split()[0])
    last = int(out.split("Last sector: ")[1].split()[0])
    return first * 512, (last - first + 1) * 512


def write_file(path: Path, mnt: Path, number: int, name: str, data: bytes) -> None:
    start, size = span(path, number)
    dev = attach(path, start, size)
    try:
        subprocess.run(["mount", dev, str(mnt)], check=True)
        try:
            (mnt / name).write_bytes(data)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(dev)


def running(argv: list[str]) -> list[int]:
    """The processes whose command line is ``argv``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if cmdline == [a.encode() for a in argv]:
            found.append(int(pid))
    return found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blank(path: Path, size: int = 96 * MIB) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


# Partition 1: the system (1..41 MiB); partition 2: data, 41..69 MiB — neither end on a
# 4 MiB chunk boundary, so the chunks at its edges are shared with its neighbours.
LAYOUT = ["-n1:2048:+40M", "-t1:8300", "-n2:0:+28M", "-t2:8300", "-n3:0:+8M", "-t3:0700",
          "-n4:0:+8M", "-t4:8300"]  # fmt: skip


def test_hooks_see_the_documented_environment_and_mounts_in_order(tmp_path: Path) -> None:
    source, mnt = tmp_path / "master.img", tmp_path / "mnt"
    ext4_disk(source, mnt, LAYOUT, {1: {"etc-hostname": b"master\n"}, 2: {"d.txt": b"d"}})
    ntfs = attach(source, *span(source, 3))  # partition 3: NTFS, as on a Windows image
    try:
        subprocess.run(["mkntfs", "-Q", "-F", ntfs], check=True, capture_output=True)
    finally:
        detach(ntfs)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        version = Store(app.layout).resolve("lab").version
        inv = Inventory(app.conn)
        inv.add_room("r101", actor="t")
        inv.update_host("pc1", room="r101", actor="t")
        record = (
            b'#!/bin/sh\nset -e\necho "$SLATE_HOOK $SLATE_HOOK_SCOPE" >> "$SLATE_MNT_P1/order"\n'
        )
        env_dump = (
            b'#!/bin/sh\nset -e\nenv | grep ^SLATE_ | sort > "$SLATE_MNT_P1/env"\n'
            b'pwd > "$SLATE_MNT_P1/cwd"\ncat "$SLATE_MNT_P1/etc-hostname"\n'
            b'echo "$SLATE_HOST" > "$SLATE_MNT_P1/etc-hostname"\n'
            b'touch "$SLATE_MNT_P2/from-hook"\necho ntfs > "$SLATE_MNT_P3/from-hook.txt"\n'
            b'echo "$SLATE_HOOK $SLATE_HOOK_SCOPE" >> '
            b'"$SLATE_MNT_P1/order"\n'
        )
        hooks.add_hook(app.conn, "host", MAC, "30-host.sh", record, actor="t")
        hooks.add_hook(app.conn, "room", "r101", "20-room.sh", record, actor="t")
        hooks.add_hook(app.conn, "image", "lab", "10-env.sh", env_dump, actor="t")
        hooks.add_hook(app.conn, "image", "lab", "11-image.sh", record, actor="t")
        target = blank(tmp_path / "target.img")
        job_id, state, reason = run(app, "lab", target, tmp_path / "mounts")
        assert state == "done", reason
        start, size = span(target, 1)
        got = read_files(target, mnt, start, size, ["order", "env", "cwd", "etc-hostname"])
        start2, size2 = span(target, 2)
        assert read_files(target, mnt, start2, size2, ["from-hook"]) == {"from-hook": b""}
        ntfs = attach(target, *span(target, 3))
        try:
            on_ntfs = subprocess.run(["ntfscat", ntfs, "from-hook.txt"], capture_output=True)
        finally:
            detach(ntfs)
        log = "\n".join(log_lines(app, job_id))
    assert on_ntfs.stdout == b"ntfs\n", on_ntfs.stderr
    assert got["order"] == b"10-env.sh image\n11-image.sh image\n20-room.sh room\n30-host.sh host\n"
    assert got["etc-hostname"] == b"pc1\n"
    root = tmp_path / "mounts"
    assert got["cwd"] == f"{root}\n".encode()
    env = dict(line.split("=", 1) for line in got["env"].decode().splitlines())
    assert env == {
        "SLATE_DISK": str(target),
        "SLATE_HOOK": "10-env.sh",
        "SLATE_HOOK_SCOPE": "image",
        "SLATE_HOST": "pc1",
        "SLATE_IMAGE": "lab",
        "SLATE_JOB": str(job_id),
        "SLATE_MAC": MAC,
        "SLATE_MNT_P1": f"{root}/p1",
        "SLATE_MNT_P2": f"{root}/p2",
        "SLATE_MNT_P3": f"{root}/p3",
        "SLATE_MOUNTS": f"{root}/p1 {root}/p2 {root}/p3",
        "SLATE_MOUNT_ROOT": str(root),
        "SLATE_ROOM": "r101",
        "SLATE_VERSION": str(version),
    }
    # The hook's output is in the job log, and the unmountable partition 4 is named.
    assert "hook 10-env.sh: master" in log
    assert "partition 4 of disk 0 (no known filesystem) is not mounted" in log
    assert not (root / "p1").exists()  # unmounted and removed afterwards


def test_hooks_mount_xfs_btrfs_and_a_second_disk_read_write(tmp_path: Path) -> None:
    """Disk 0: xfs (partition 1), btrfs (partition 2); disk 1: ext4.  (vfat is mounted
    the same way in the boot environment; this host's kernel has no vfat driver.)"""
    mnt = tmp_path / "mnt"
    disk0, disk1 = tmp_path / "d0.img", tmp_path / "d1.img"
    with disk0.open("wb") as f:
        f.truncate(448 * MIB)
    subprocess.run(["sgdisk", "-n1:2048:+300M", "-t1:8300", "-n2:0:+128M", "-t2:8300",
                    str(disk0)], check=True, capture_output=True)  # fmt: skip
    for number, mkfs in ((1, ["mkfs.xfs", "-q", "-f"]), (2, ["mkfs.btrfs", "-q", "-f"])):
        dev = attach(disk0, *span(disk0, number))
        try:
            subprocess.run([*mkfs, dev], check=True, capture_output=True)
        finally:
            detach(dev)
    ext4_disk(disk1, mnt, ["-n1:2048:+16M", "-t1:8300"], {1: {"seed": b"disk 1"}})
    script = (
        b'#!/bin/sh\nset -e\nfor m in $SLATE_MOUNTS; do echo "$SLATE_HOST" > "$m/from-hook"; done\n'
        b'env | grep ^SLATE_MNT_ | sort > "$SLATE_MNT_D1P1/mnt-env"\n'
    )
    with ServedHome(tmp_path / "home") as app:
        import_image(Store(app.layout), [disk0, disk1], "two")
        hooks.add_hook(app.conn, "image", "two", "10-all.sh", script, actor="t")
        job, token = app.restore_job("two")
        t0, t1 = blank(tmp_path / "t0.img", 448 * MIB), blank(tmp_path / "t1.img")
        env = {**os.environ, "SLATE_MOUNT_ROOT": str(tmp_path / "mounts")}
        proc = subprocess.run(client_argv(app.url, job, token, f"{t0},{t1}"), capture_output=True,
                              text=True, cwd=ROOT, timeout=300, env=env)  # fmt: skip
        ended = app.job(job.id)
        assert ended.state == "done", (ended.reason, proc.stderr)
        log = "\n".join(log_lines(app, job.id))
    root = tmp_path / "mounts"
    for label, fs in (("p1", "xfs"), ("p2", "btrfs"), ("d1p1", "ext4")):
        assert f"({fs}) at {root}/{label}" in log, log
    assert read_files(t0, mnt, *span(t0, 1), ["from-hook"]) == {"from-hook": b"pc1\n"}
    assert read_files(t0, mnt, *span(t0, 2), ["from-hook"]) == {"from-hook": b"pc1\n"}
    got = read_files(t1, mnt, *span(t1, 1), ["from-hook", "mnt-env", "seed"])
    assert got["from-hook"] == b"pc1\n" and got["seed"] == b"disk 1"
    assert got["mnt-env"].decode().splitlines() == [
        f"SLATE_MNT_D1P1={root}/d1p1",
        f"SLATE_MNT_P1={root}/p1",
        f"SLATE_MNT_P2={root}/p2",
    ]
    for dev_of, number, check in ((t0, 1, ["xfs_repair", "-n"]),
                                  (t0, 2, ["btrfs", "check", "--readonly"]),
                                  (t1, 1, ["e2fsck", "-fn"])):  # fmt: skip
        dev = attach(dev_of, *span(dev_of, number))
        try:
            fsck = subprocess.run([*check, dev], capture_output=True, text=True)
        finally:
            detach(dev)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@pytest.mark.parametrize(
    ("script", "timeout", "says"),
    [
        (b"#!/bin/sh\necho about to fail\nexit 3\n", 60, "failed: exit status 3"),
        (b"#!/bin/sh\nsleep 613 &\nsleep 600\n", 2, "timed out after 2 s"),
    ],
    ids=["failing", "timed-out"],
)
def test_a_failing_or_timed_out_hook_fails_the_job_naming_it(
    tmp_path: Path, script: bytes, timeout: int, says: str
) -> None:
    source, mnt = tmp_path / "master.img", tmp_path / "mnt"
    ext4_disk(source, mnt, LAYOUT, {1: {"x": b"x"}})
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        hooks.add_hook(app.conn, "image", "lab", "50-bad.sh", script, timeout=timeout, actor="t")
        after = b'#!/bin/sh\ntouch "$SLATE_MNT_P1/after-ran"\n'
        hooks.add_hook(app.conn, "host", MAC, "60-after.sh", after, actor="t")
        target = blank(tmp_path / "target.img")
        job_id, state, reason = run(app, "lab", target, tmp_path / "mounts")
        log = log_lines(app, job_id)
    assert state == "failed"
    assert f"hook 50-bad.sh (image lab) {says}" in reason, reason
    if timeout == 60:
        assert any(line.endswith("hook 50-bad.sh: about to fail") for line in log), log
    else:  # killed with everything it started
        assert not running(["sleep", "613"])
    start, size = span(target, 1)
    with pytest.raises(FileNotFoundError):  # the next hook did not run
        read_files(target, mnt, start, size, ["after-ran"])
    assert not (tmp_path / "mounts" / "p1").is_mount()


def test_a_file_on_a_kept_partition_survives_two_restores(tmp_path: Path) -> None:
    source, mnt = tmp_path / "master.img", tmp_path / "mnt"
    rng = random.Random(13)
    system = {f"s{i}": rng.randbytes(3 * MIB) for i in range(3)}
    ext4_disk(source, mnt, LAYOUT, {1: system, 2: {"seed.txt": b"from the image\n"}})
    data = rng.randbytes(5 * MIB)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        hooks.add_keep(app.conn, "image", "lab", 2, actor="t")
        target = blank(tmp_path / "target.img")
        # A new disk (no partition table) gets the whole image, partition 2 included.
        job_id, state, reason = run(app, "lab", target, tmp_path / "mounts")
        assert state == "done", reason
        assert any("no partition table" in line for line in log_lines(app, job_id))
        start, size = span(target, 2)
        assert read_files(target, mnt, start, size, ["seed.txt"]) == {
            "seed.txt": b"from the image\n"
        }
        write_file(target, mnt, 2, "student-work.bin", data)
        for round_ in range(2):
            write_file(target, mnt, 1, "junk", b"changed on the system partition")
            job_id, state, reason = run(app, "lab", target, tmp_path / "mounts")
            assert state == "done", f"restore {round_ + 2}: {reason}"
            assert any(
                "partition 2" in line and "left as it is" in line for line in log_lines(app, job_id)
            )
            start, size = span(target, 2)
            got = read_files(target, mnt, start, size, ["student-work.bin", "seed.txt"])
            assert got == {"student-work.bin": data, "seed.txt": b"from the image\n"}
            # The system partition is the image's again (the identity step after the
            # write mounts it, so its bytes are not compared).
            start1, size1 = span(target, 1)
            assert read_files(target, mnt, start1, size1, list(system)) == system
            with pytest.raises(FileNotFoundError):
                read_files(target, mnt, start1, size1, ["junk"])
    dev = attach(target, *span(target, 2))
    try:
        fsck = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, text=True)
    finally:
        detach(dev)
    assert fsck.returncode == 0, fsck.stdout


def test_a_mismatched_layout_fails_before_any_write(tmp_path: Path) -> None:
    source, mnt = tmp_path / "master.img", tmp_path / "mnt"
    ext4_disk(source, mnt, LAYOUT, {1: {"x": b"x"}, 2: {"y": b"y"}})
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        room = Inventory(app.conn)
        room.add_room("r2", actor="t")
        room.update_host("pc1", room="r2", actor="t")
        hooks.add_keep(app.conn, "room", "r2", 2, actor="t")
        target = tmp_path / "target.img"
        # The disk's partition 2 starts 4 MiB later than the image's.
        other = ["-n1:2048:+44M", "-t1:8300", "-n2:0:+24M", "-t2:8300"]
        ext4_disk(target, mnt, other, {1: {"old": b"old"}, 2: {"keep-me": b"precious"}})
        before = sha(target)
        _, state, reason = run(app, "lab", target, tmp_path / "mounts")
        assert state == "failed"
        assert "kept partition 2 differs: start" in reason, reason
        assert "nothing was written" in reason
        assert sha(target) == before
