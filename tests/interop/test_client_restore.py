"""The restore client as a process against a live appliance on loopback, writing a
sparse file: byte-for-byte restores, delta restores, damaged chunks."""

from __future__ import annotations

import filecmp
from pathlib import Path

from client_kit import MIB, Appliance, change_chunks, make_disk, run_client


def test_restore_equals_image_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "master.img"
    make_disk(source, 64 * MIB)
    target = tmp_path / "target.img"
    target.touch()
    target.write_bytes(b"")
    with Appliance(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job()
        with target.open("wb") as f:
            f.truncate(64 * MIB)
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
        assert filecmp.cmp(source, target, shallow=False)
        ended = app.job(job.id)
        assert ended.state == "done", ended.reason
        assert ended.verified_bytes > 0


def test_delta_restore_fetches_only_changed_chunks(tmp_path: Path) -> None:
    source = tmp_path / "master.img"
    make_disk(source, 128 * MIB, data_fraction=0.9)
    target = tmp_path / "target.img"
    target.write_bytes(source.read_bytes())
    changed = change_chunks(target, 0.05)
    with Appliance(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job()
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
        assert filecmp.cmp(source, target, shallow=False)
        # Only the changed 4 MiB chunks were written (each fetched once).
        assert f"{len(changed) * 4} MiB written" in proc.stderr, proc.stderr
        assert app.job(job.id).state == "done"
