"""`slate image …` end to end through the real CLI, on disks built by real tools
(sgdisk, mkfs.ext4, mkfs.vfat, qemu-img)."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

MIB = 1024 * 1024


def make_disk(path: Path, seed: int = 1, size_mib: int = 48) -> Path:
    """A GPT disk: an EFI (vfat) partition and an ext4 one filled from a directory."""
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
    subprocess.run(
        ["sgdisk", "-n1:2048:+8M", "-t1:ef00", "-c1:EFI", "-n2:0:0", "-t2:8300", "-c2:root",
         str(path)], check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["mkfs.vfat", "--offset", "2048", str(path), "8192"], check=True,
                   capture_output=True)  # fmt: skip
    tree = path.with_suffix(".d")
    tree.mkdir()
    rnd = random.Random(seed)
    (tree / "notes.txt").write_text("".join(f"line {i} of seed {seed}\n" for i in range(20000)))
    (tree / "blob.bin").write_bytes(rnd.randbytes(3 * MIB))
    ext_sectors = (size_mib * MIB) // 512 - 18432 - 34
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), "-E", f"offset={18432 * 512}", str(path),
         f"{ext_sectors // 2}k"], check=True, capture_output=True,
        env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"),
    )  # fmt: skip
    return path


def store_state(home: Path) -> list[str]:
    """Every file of the store (name + size) and the DB's version rows."""
    store = home / "store"
    files = sorted(
        f"{p.relative_to(store)}:{p.stat().st_size}" for p in store.rglob("*") if p.is_file()
    ) if store.exists() else []  # fmt: skip
    return files


def test_import_show_export_round_trip(slate, tmp_path, home):
    disk = make_disk(tmp_path / "d.img")
    proc = slate("image", "import", str(disk), "--name", "lab-pc", "--note", "first", check=True)
    version = proc.stdout.strip()
    info = json.loads(slate("image", "show", "lab-pc", "--json", check=True).stdout)
    assert info["version"] == version and info["note"] == "first"
    (d0,) = info["disks"]
    assert d0["table"] == "gpt" and d0["size"] == disk.stat().st_size
    parts = [(p["number"], p["fs"], p["name"]) for p in d0["partitions"]]
    assert parts == [(1, "vfat", "EFI"), (2, "ext4", "root")]
    assert 0 < info["stored_size"] < info["data_size"] <= info["logical_size"]
    text = slate("image", "show", f"lab-pc@{version}", check=True).stdout
    assert "EFI system" in text and "ext4" in text
    listed = json.loads(slate("image", "list", "--json", check=True).stdout)
    assert [(r["image"], r["version"]) for r in listed] == [("lab-pc", version)]

    out = tmp_path / "out.img"
    slate("image", "export", "lab-pc", str(out), check=True)
    assert out.read_bytes() == disk.read_bytes()
    assert out.stat().st_blocks * 512 < out.stat().st_size  # zero chunks are holes
    assert slate("image", "export", "lab-pc", str(out)).returncode == 1  # exists
    slate("image", "export", "lab-pc", str(out), "--force", check=True)
    assert slate("image", "verify", "--json", check=True).returncode == 0


def test_reimport_stores_only_changed_chunks(slate, tmp_path, home):
    disk = make_disk(tmp_path / "d.img")
    v1 = slate("image", "import", str(disk), "--name", "pc", check=True).stdout.strip()
    with open(disk, "r+b") as fh:  # change one 4 MiB chunk's worth of bytes
        fh.seek(20 * MIB)
        fh.write(random.Random(9).randbytes(100_000))
    proc = slate("image", "import", str(disk), "--name", "pc", check=True)
    v2 = proc.stdout.strip()
    assert v2 != v1 and "1 new chunk(s)" in proc.stderr
    info = json.loads(slate("image", "show", "pc", "--json", check=True).stdout)
    assert info["version"] == v2 and info["versions"] == [v1, v2]
    assert info["shared_with"] == {f"pc@{v1}": info["chunks"] - 1}
    out = tmp_path / "v1.img"
    disk_v2 = disk.read_bytes()
    slate("image", "export", f"pc@{v2}", str(out), check=True)
    assert out.read_bytes() == disk_v2


def test_multi_disk_and_qcow2_sources(slate, tmp_path):
    a = make_disk(tmp_path / "a.img", seed=2)
    raw = tmp_path / "b.raw"
    raw.write_bytes(b"\0" * MIB + random.Random(3).randbytes(MIB) + b"text" * 262144)
    qcow = tmp_path / "b.qcow2"
    subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(qcow)], check=True)
    slate("image", "import", "--disk", str(a), "--disk", str(qcow), "--name", "two", check=True)
    info = json.loads(slate("image", "show", "two", "--json", check=True).stdout)
    assert [d["size"] for d in info["disks"]] == [a.stat().st_size, raw.stat().st_size]
    out0, out1 = tmp_path / "o0.img", tmp_path / "o1.img"
    assert slate("image", "export", "two", str(out0)).returncode == 1  # 2 disks, 1 dest
    slate("image", "export", "two", str(out0), str(out1), check=True)
    assert out0.read_bytes() == a.read_bytes() and out1.read_bytes() == raw.read_bytes()
    slate("image", "export", "two", str(tmp_path / "only1.img"), "--disk", "1", check=True)
    assert (tmp_path / "only1.img").read_bytes() == raw.read_bytes()


def _bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    good = tmp_path / "good.img"
    good.write_bytes(random.Random(4).randbytes(MIB))
    (tmp_path / "empty.img").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    qcow = tmp_path / "t.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(good), str(qcow)], check=True)
    (tmp_path / "trunc.qcow2").write_bytes(qcow.read_bytes()[:200_000])
    bad = bytearray(qcow.read_bytes())
    bad[0x30:0x38] = b"\xff" * 8  # l1 table offset far outside the file
    (tmp_path / "corrupt.qcow2").write_bytes(bytes(bad))
    imp = ["image", "import"]
    return {
        "missing": [*imp, str(tmp_path / "nope.img"), "--name", "x"],
        "directory": [*imp, str(tmp_path / "adir"), "--name", "x"],
        "empty": [*imp, str(tmp_path / "empty.img"), "--name", "x"],
        "truncated qcow2": [*imp, str(tmp_path / "trunc.qcow2"), "--name", "x"],
        "corrupt qcow2": [*imp, str(tmp_path / "corrupt.qcow2"), "--name", "x"],
        "slash": [*imp, str(good), "--name", "a/b"],
        "dotdot": [*imp, str(good), "--name", ".."],
        "unknown version": ["image", "export", "ok@20200101T000000Z", str(tmp_path / "o")],
        "bad version": ["image", "show", "ok@yesterday"],
        "unknown image": ["image", "show", "nosuch"],
        "rm without version": ["image", "rm", "ok"],
    }


def test_bad_input_one_line_exit_1_store_untouched(slate, tmp_path, home):
    cases = _bad_inputs(tmp_path)
    slate("image", "import", str(tmp_path / "good.img"), "--name", "ok", "--format", "raw",
          check=True)  # random bytes, no partition table: raw on request  # fmt: skip
    before = store_state(home)
    for label, args in cases.items():
        proc = slate(*args)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 1, (label, proc.stderr)
        assert lines[0].startswith("slate: error: ") and len(lines) <= 2, (label, lines)
        assert "Traceback" not in proc.stderr
        assert store_state(home) == before, label
    assert not (tmp_path / "o").exists()


def test_flipped_byte_named_by_verify_and_fails_export(slate, tmp_path, home):
    disk = make_disk(tmp_path / "d.img")
    v1 = slate("image", "import", str(disk), "--name", "a", check=True).stdout.strip()
    v2 = slate("image", "import", str(disk), "--name", "b", check=True).stdout.strip()
    info = json.loads(slate("image", "show", "a", "--json", check=True).stdout)
    assert info["shared_chunks"] == info["chunks"]
    chunk = max((home / "store" / "chunks").rglob("*.zst"), key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    digest = chunk.name[:-4]

    proc = slate("image", "verify")
    assert proc.returncode == 1
    assert digest in proc.stdout and f"a@{v1}" in proc.stdout and f"b@{v2}" in proc.stdout
    report = json.loads(slate("image", "verify", "--json").stdout)
    assert not report["ok"] and sorted(report["used_by"][digest]) == [f"a@{v1}", f"b@{v2}"]

    out = tmp_path / "out.img"
    proc = slate("image", "export", "b", str(out))
    assert proc.returncode == 1 and "exported" not in proc.stdout
    assert digest in proc.stderr and f"b@{v2}" in proc.stderr and "offset" in proc.stderr
    assert not out.exists() and not (tmp_path / "out.img.partial").exists()

    chunk.unlink()  # missing now: named before a byte is written
    proc = slate("image", "export", "a", str(out))
    assert proc.returncode == 1 and digest in proc.stderr and "missing" in proc.stderr


def test_rm_and_gc(slate, tmp_path, home):
    a = make_disk(tmp_path / "a.img", seed=5)
    b = make_disk(tmp_path / "b.img", seed=6)
    va = slate("image", "import", str(a), "--name", "pc", check=True).stdout.strip()
    slate("image", "import", str(b), "--name", "pc", check=True)
    chunks = lambda: len(list((home / "store" / "chunks").rglob("*.zst")))  # noqa: E731
    n = chunks()
    gc = json.loads(slate("image", "gc", "--json", check=True).stdout)
    assert gc["removed"] == 0 and chunks() == n
    slate("image", "rm", f"pc@{va}", check=True)
    assert slate("image", "rm", f"pc@{va}").returncode == 1
    gc = json.loads(slate("image", "gc", "--json", check=True).stdout)
    assert gc["removed"] > 0 and chunks() == n - gc["removed"]
    slate("image", "verify", check=True)
    listed = json.loads(slate("image", "list", "--json", check=True).stdout)
    assert [r["version"] for r in listed] != [va] and len(listed) == 1


@pytest.mark.parametrize("name", ["a/b", "..", "-x", "x" * 65])
def test_names_checked_before_reading(slate, tmp_path, name):
    proc = slate("image", "import", str(tmp_path / "missing"), f"--name={name}")
    assert proc.returncode == 1 and "image name" in proc.stderr


def test_qcow2_in_place_and_with_backing_file(slate, tmp_path):
    raw = tmp_path / "base.raw"
    raw.write_bytes(b"\0" * 3 * MIB + random.Random(8).randbytes(MIB) + b"\0" * 4 * MIB)
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(base)], check=True)
    top = tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                    str(top)], check=True)  # fmt: skip
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 6M 64k", str(top)], check=True,
                   capture_output=True)  # fmt: skip
    expected = bytearray(raw.read_bytes())
    expected[6 * MIB : 6 * MIB + 65536] = b"\x5a" * 65536
    for src, want in ((base, raw.read_bytes()), (top, bytes(expected))):
        slate("image", "import", str(src), "--name", src.stem, check=True)
        out = tmp_path / f"{src.stem}.out"
        slate("image", "export", src.stem, str(out), check=True)
        assert out.read_bytes() == want, src


def test_note_changes_only_the_note_and_rm_refuses_a_version_in_use(slate, tmp_path, home):
    from appliance import db
    from appliance.config import Layout
    from appliance.jobs import Jobs
    from appliance.machines import Inventory

    disk = make_disk(tmp_path / "n.img", seed=9)
    v = slate("image", "import", str(disk), "--name", "lab", "--note", "old", check=True)
    version = v.stdout.strip()
    before = json.loads(slate("image", "show", f"lab@{version}", "--json", check=True).stdout)
    slate("image", "note", f"lab@{version}", "term 3 build", check=True)
    after = json.loads(slate("image", "show", f"lab@{version}", "--json", check=True).stdout)
    assert after["note"] == "term 3 build"
    assert {k: x for k, x in after.items() if k != "note"} == {
        k: x for k, x in before.items() if k != "note"
    }
    bad = slate("image", "note", f"lab@{version}", "two\nlines")
    assert bad.returncode == 1 and "one line" in bad.stderr
    slate("image", "verify", check=True)

    conn = db.connect(Layout(home).db)
    Inventory(conn).add_host("02:00:00:00:00:42", "pc-42", actor="test")
    job = Jobs(conn, Layout(home)).restore("pc-42", f"lab@{version}", actor="test")
    refused = slate("image", "rm", f"lab@{version}")
    assert refused.returncode == 1 and "used by a job" in refused.stderr
    assert "slate job cancel" in refused.stderr
    Jobs(conn, Layout(home)).cancel(job.id, actor="test")
    slate("image", "rm", f"lab@{version}", check=True)
