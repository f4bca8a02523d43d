"""A capture under faults, with the real client and a live appliance: the client killed
mid-upload, the appliance restarted before the commit, the store's disk full.  Each
leaves no visible partial version, the job fails with the reason, the next capture
succeeds, and gc leaves no chunk that no version uses."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from client_kit import MIB, ROOT, ServedHome, client_argv, make_disk, run_client, wait_for

from appliance.store import Store
from appliance.store.collect import collect

LATER = timedelta(hours=7)  # past the job's give_up_after (6 h) and the margin


def _chunks(store: Store) -> set[str]:
    return {p.name[:-4] for p in store.chunk_files()}


def _no_leftovers(store: Store) -> None:
    """After gc: every chunk file belongs to a committed version; no temp or pin file."""
    collect(store)
    named = set().union(*(m.digests() for m in store.all_manifests()))
    assert _chunks(store) == named
    assert list((store.root / "tmp").iterdir()) == []
    assert list((store.root / "sessions").iterdir()) == []


def _start_capture(app: ServedHome, disk: Path, *extra: str) -> tuple[int, subprocess.Popen[str]]:
    job, token = app.capture_job("pc")
    proc = subprocess.Popen(
        client_argv(app.url, job, token, disk, *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    return job.id, proc


def _uploading(store: Store, proc: subprocess.Popen[str], n: int = 3) -> None:
    wait_for(lambda: len(_chunks(store)) >= n or proc.poll() is not None, timeout=120, step=0.01)
    assert proc.poll() is None, "the capture ended before the fault could be injected"


def _capture_ok(app: ServedHome, disk: Path) -> str:
    job, token = app.capture_job("pc")
    proc = run_client(app.url, job, token, disk)
    assert proc.returncode == 0, proc.stderr
    done = app.job(job.id)
    assert done.state == "done" and done.result_version, done.reason
    return done.result_version


def _expired(app: ServedHome, job_id: int) -> str:
    """What Housekeeping does once the machine has been silent too long."""
    failed = app.jobs().expire_stale(datetime.now(UTC) + LATER)
    assert [j.id for j in failed] == [job_id]
    return failed[0].reason


def test_client_killed_mid_upload(tmp_path: Path) -> None:
    disk = tmp_path / "pc.img"
    make_disk(disk, 256 * MIB, seed=5, data_fraction=0.9)
    with ServedHome(tmp_path / "home") as app:
        store = Store(app.layout)
        job_id, proc = _start_capture(app, disk)
        _uploading(store, proc)
        proc.kill()
        proc.wait()
        assert store.version_ids("pc") == [] and app.job(job_id).state == "running"
        assert "no news from the machine" in _expired(app, job_id)
        other = tmp_path / "other.img"
        make_disk(other, 64 * MIB, seed=6)
        version = _capture_ok(app, other)  # the next capture: a version, the only one
        assert store.version_ids("pc") == [version]
        _no_leftovers(store)


def test_appliance_restarted_before_the_commit(tmp_path: Path) -> None:
    disk = tmp_path / "pc.img"
    make_disk(disk, 256 * MIB, seed=7, data_fraction=0.9)
    with ServedHome(tmp_path / "home") as app:
        store = Store(app.layout)
        # Down for longer than the client waits: it gives up; the job fails with why.
        job_id, proc = _start_capture(app, disk, "--give-up-after", "2")
        _uploading(store, proc)
        app.stop()
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "unreachable" in err, err
        app.start()
        assert store.version_ids("pc") == []
        assert "no news from the machine" in _expired(app, job_id)
        left = _chunks(store)
        assert left, "the killed upload left chunks for gc to find"
        other = tmp_path / "other.img"
        make_disk(other, 64 * MIB, seed=8)
        version = _capture_ok(app, other)
        assert collect(store).removed >= len(left - store.digests("pc", version))
        _no_leftovers(store)
        # Down for a moment only: the client waits, resumes, and commits once.
        job_id, proc = _start_capture(app, disk)
        _uploading(store, proc, len(_chunks(store)) + 3)
        app.stop()
        app.start()
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert app.job(job_id).state == "done"
        assert store.version_ids("pc") == [version, app.job(job_id).result_version]
        _no_leftovers(store)


@pytest.fixture
def small_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``home/store`` on a 24 MiB tmpfs (root only)."""
    store = tmp_path / "home" / "store"
    store.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(store)], check=True)
    try:
        yield store
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def test_store_disk_full(tmp_path: Path, small_store: Path) -> None:
    disk = tmp_path / "pc.img"
    make_disk(disk, 96 * MIB, seed=9, data_fraction=0.9)  # ~40 MiB of random data
    with ServedHome(tmp_path / "home") as app:
        store = Store(app.layout)
        job, token = app.capture_job("pc")
        proc = run_client(app.url, job, token, disk)
        assert proc.returncode != 0
        failed = app.job(job.id)
        assert failed.state == "failed" and "is full" in failed.reason, failed.reason
        assert store.version_ids("pc") == []
        assert list((store.root / "tmp").iterdir()) == []  # no partial chunk file
        # The technician frees space (here: a larger filesystem); the next capture works.
        subprocess.run(["mount", "-o", "remount,size=256m", str(small_store)], check=True)
        version = _capture_ok(app, disk)
        assert store.version_ids("pc") == [version]
        _no_leftovers(store)
