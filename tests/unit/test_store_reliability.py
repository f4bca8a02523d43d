"""The store under crashes and concurrency, with real `slate` processes: kill -9
during import, gc during import, two imports at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from appliance.config import Layout
from appliance.store import Store
from appliance.store.collect import collect

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def _random_file(path: Path, mib: int, seed: int) -> Path:
    # Incompressible, 64 KiB chunks: an import takes long enough to be caught mid-way.
    # Not a disk (no partition table): imported with --format raw.
    with open(path, "wb") as fh:
        for i in range(mib):
            fh.write(seed.to_bytes(4, "big") + os.urandom(MIB - 4) if i else b"\1" * MIB)
    return path


def _import(home: Path, src: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "--home", str(home), "image", "import",
         str(src), "--name", name, "--chunk-size", "0.0625", "--format", "raw"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def _chunk_files(home: Path) -> list[Path]:
    return list((home / "store" / "chunks").rglob("*.zst"))


def _wait_for_chunks(home: Path, proc: subprocess.Popen[str], n: int) -> None:
    deadline = time.monotonic() + 60
    while len(_chunk_files(home)) < n:
        assert proc.poll() is None, "the import ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _referenced(store: Store) -> set[str]:
    return {d for m in store.all_manifests() for d in m.digests()}


def test_kill_9_during_import(slate, tmp_path, home):
    src = _random_file(tmp_path / "big.img", 48, seed=1)
    proc = _import(home, src, "pc")
    _wait_for_chunks(home, proc, 30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    orphans = len(_chunk_files(home))
    assert orphans >= 30

    assert json.loads(slate("image", "list", "--json", check=True).stdout) == []
    slate("image", "verify", check=True)
    small = _random_file(tmp_path / "small.img", 4, seed=2)
    slate("image", "import", str(small), "--name", "pc", "--format", "raw", check=True)
    gc = json.loads(slate("image", "gc", "--json", check=True).stdout)
    assert gc["removed"] >= orphans - 1  # the all-ones chunk may be shared
    store = Store(Layout(home))
    assert {p.name[:-4] for p in _chunk_files(home)} == _referenced(store)
    assert list((home / "store" / "sessions").iterdir()) == []
    assert list((home / "store" / "tmp").iterdir()) == []
    slate("image", "verify", check=True)


def test_gc_during_import_keeps_its_chunks(slate, tmp_path, home):
    src = _random_file(tmp_path / "big.img", 32, seed=3)
    store = Store(Layout(home))
    proc = _import(home, src, "pc")
    _wait_for_chunks(home, proc, 5)
    runs_during = 0
    while proc.poll() is None:
        result = collect(store)
        assert result.removed == 0
        runs_during += 1 if result.live_sessions else 0
        time.sleep(0.05)
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert runs_during >= 1
    slate("image", "verify", check=True)
    dest = tmp_path / "out.img"
    slate("image", "export", "pc", str(dest), check=True)
    assert dest.read_bytes() == src.read_bytes()


def test_session_pins_protect_until_closed_or_dead(tmp_path, home):
    store = Store(Layout(home))
    data = b"pinned chunk" * 1000
    from appliance.formats import chunkio

    digest = chunkio.hash_chunk(data)
    with store.session() as session:
        assert session.missing([digest]) == [digest]
        assert session.put_chunk_frame(digest, chunkio.compress_chunk(data))
        assert collect(store).removed == 0 and store.has_chunk(digest)
    assert collect(store).removed == 1 and not store.has_chunk(digest)

    # A session whose process died (kill -9) pins nothing.
    code = (
        "import os, signal, sys\n"
        "from appliance.config import Layout\nfrom appliance.store import Store\n"
        "from appliance.formats import chunkio\n"
        f"data = {data!r}\n"
        "cm = Store(Layout(__import__('pathlib').Path(sys.argv[1]))).session()\n"
        "s = cm.__enter__()\n"
        "s.put_chunk_frame(chunkio.hash_chunk(data), chunkio.compress_chunk(data))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(home)], cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL and store.has_chunk(digest)
    assert len(list((home / "store" / "sessions").iterdir())) == 1
    result = collect(store)
    assert result.removed == 1 and result.live_sessions == []
    assert list((home / "store" / "sessions").iterdir()) == []


def test_two_imports_at_once_sharing_chunks(slate, tmp_path, home):
    a = _random_file(tmp_path / "a.img", 24, seed=4)
    b = tmp_path / "b.img"
    data = bytearray(a.read_bytes())
    data[5 * MIB : 6 * MIB] = os.urandom(MIB)
    b.write_bytes(bytes(data))
    procs = [_import(home, a, "pc"), _import(home, b, "pc")]
    results = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    versions = [out.strip() for out, _ in results]
    assert len(set(versions)) == 2
    slate("image", "verify", check=True)
    for src, version in zip((a, b), versions, strict=True):
        dest = tmp_path / f"out-{version}.img"
        slate("image", "export", f"pc@{version}", str(dest), check=True)
        assert dest.read_bytes() == src.read_bytes()
    store = Store(Layout(home))
    assert {p.name[:-4] for p in _chunk_files(home)} == _referenced(store)


def test_failed_import_removes_only_its_own_new_chunks(tmp_path, home):
    from appliance.formats import chunkio
    from appliance.store.importer import import_image

    store = Store(Layout(home))
    src = _random_file(tmp_path / "src.img", 8, seed=7)
    first_mib = src.read_bytes()[:MIB]
    kept = chunkio.hash_chunk(first_mib)
    other = store.session()
    session = other.__enter__()  # another live import pinned the first chunk
    session.write_chunk(kept, chunkio.compress_chunk(first_mib))

    class Stop(Exception):
        pass

    def progress(total: int):
        seen = []

        def advance(n: int) -> None:
            seen.append(n)
            if len(seen) == 4:
                raise Stop

        return advance

    try:
        import_image(store, [src], "pc", chunk_size=MIB, progress=progress)
    except Stop:
        pass
    else:
        raise AssertionError("the import should have stopped")
    assert [p.name[:-4] for p in _chunk_files(home)] == [kept]
    assert store.images() == [] and list((home / "store" / "sessions").iterdir())
    other.__exit__(None, None, None)
    assert list((home / "store" / "sessions").iterdir()) == []
