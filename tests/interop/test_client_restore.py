"""The restore client as a process against a live appliance on loopback, writing a
sparse file: byte-for-byte restores, delta restores, damaged chunks."""

from __future__ import annotations

import filecmp
import subprocess
import time
from pathlib import Path

from client_kit import MIB, ROOT, ServedHome, change_chunks, client_argv, make_disk, run_client

from appliance.formats.chunkio import compress_chunk
from appliance.store import Store


def test_restore_equals_image_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "master.img"
    make_disk(source, 64 * MIB)
    target = tmp_path / "target.img"
    target.touch()
    target.write_bytes(b"")
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job()
        with target.open("wb") as f:
            f.truncate(64 * MIB)
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
        assert filecmp.cmp(source, target, shallow=False)
        ended = app.job(job.id)
        assert ended.state == "done", ended.reason
        assert ended.verified_bytes == 64 * MIB
        # The last progress report came before "done": the console shows the full bar.
        assert ended.bytes_total == 64 * MIB and ended.bytes_done == 64 * MIB
        assert ended.phase == "finishing"


def test_delta_restore_fetches_only_changed_chunks(tmp_path: Path) -> None:
    source = tmp_path / "master.img"
    make_disk(source, 128 * MIB, data_fraction=0.9)
    target = tmp_path / "target.img"
    target.write_bytes(source.read_bytes())
    changed = change_chunks(target, 0.05)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job()
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
        assert filecmp.cmp(source, target, shallow=False)
        # Only the changed 4 MiB chunks were written (each fetched once).
        assert f"{len(changed) * 4} MiB written" in proc.stderr, proc.stderr
        assert app.job(job.id).state == "done"


def test_damaged_chunk_fails_the_job_naming_the_chunk(tmp_path: Path) -> None:
    source = tmp_path / "master.img"
    make_disk(source, 32 * MIB, data_fraction=1.0)
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(32 * MIB)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        manifest = Store(app.layout).resolve("lab")
        victim = next(c.digest for c in manifest.disks[0].chunks if c.digest)
        assert victim is not None
        path = Store(app.layout).chunk_path(victim)
        path.chmod(0o644)
        path.write_bytes(compress_chunk(b"not what the name says" * 1000))
        job, token = app.restore_job()
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 1
        ended = app.job(job.id)
        assert ended.state == "failed"
        assert victim in ended.reason, ended.reason
        assert "done:" not in proc.stderr


def test_appliance_killed_and_restarted_mid_restore(tmp_path: Path) -> None:
    source = tmp_path / "master.img"
    make_disk(source, 192 * MIB, data_fraction=1.0)
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(192 * MIB)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        job, token = app.restore_job()
        client = subprocess.Popen(
            client_argv(app.url, job, token, target, "--workers", "2"),
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert client.stderr is not None
            for line in client.stderr:
                if "restoring lab@" in line:
                    break
            app.stop()  # SIGKILL: connections die mid-transfer
            time.sleep(3)
            app.start()
            rest = client.communicate(timeout=300)[1]
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == 0, rest
        assert "retrying" in rest
        assert filecmp.cmp(source, target, shallow=False)
        assert app.job(job.id).state == "done"
