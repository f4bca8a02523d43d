"""Backups with the real client and a live appliance: two captures created by the
scheduler (run with a test clock, as the appliance's Housekeeping loop runs it), then
retention keeps the newer one, gc frees what only the older one used, and a restore "as
of" the second capture's time gets it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from client_kit import MIB, ServedHome, change_chunks, make_disk, run_client

from appliance.backups.schedules import Schedules
from appliance.refs import version_time
from appliance.server import Housekeeping
from appliance.store import Store
from appliance.store import policy as policies
from appliance.store.collect import collect

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_two_scheduled_captures_and_retention(tmp_path: Path) -> None:
    disk = tmp_path / "ws.img"
    make_disk(disk, 32 * MIB, seed=3)
    with ServedHome(tmp_path / "home") as app:
        store = Store(app.layout)
        policies.put(app.conn, policies.ImagePolicy("ws", auto_promote=True, keep_last=1))
        sched = Schedules(app.conn, app.layout)
        s = sched.add(action="capture", image="ws", every="daily 02:00", host="pc1",
                      actor="test", now=T0)  # fmt: skip
        house = Housekeeping(app.layout, lambda: app.conn)
        versions, states = [], []
        for night in (1, 2):
            # 02:00:30 in the appliance's local time (the schedule's zone)
            now = datetime(2026, 11, 23 + night, 2, 0, 30).astimezone().astimezone(UTC)
            house.run_backups(now)  # the scheduler creates the capture job, once
            house.run_backups(now + timedelta(seconds=30))
            (job,) = app.jobs().list_jobs()
            assert (job.action, job.created_by) == ("capture", f"schedule:{s.id}")
            proc = run_client(app.url, job, app.jobs().token(job.id), disk)
            assert proc.returncode == 0, proc.stderr
            done = app.job(job.id)
            assert done.state == "done", done.reason
            versions.append(done.result_version)
            if night == 2:  # before retention runs: what only the first version used
                first_only = store.digests("ws", versions[0]) - store.digests("ws", versions[1])
            assert store.is_promoted("ws", done.result_version)  # --auto-promote
            house.run_backups(now + timedelta(minutes=5))  # retention after the capture
            states.append(disk.read_bytes())
            change_chunks(disk, 0.25, seed=night)
        assert store.version_ids("ws") == versions[1:]  # the older one was pruned ...
        assert len(first_only) > 0 and not any(store.has_chunk(d) for d in first_only)
        assert collect(store).removed == 0  # ... and its chunks collected already
        second = datetime(2026, 11, 25, 2, 0).astimezone().astimezone(UTC)
        assert second.strftime("%Y-%m-%dT%H:%M:%SZ") in sched.get(s.id).last_result
        audit = [tuple(r) for r in app.conn.execute("SELECT actor, action, target FROM audit")]
        assert ("retention", "image.prune", f"ws@{versions[0]}") in audit
        # As of the second capture (by its own time): that version, restored and verified.
        when = version_time(versions[1]).strftime("%Y-%m-%dT%H:%M:%SZ")
        target = tmp_path / "restored.img"
        with target.open("wb") as f:
            f.truncate(32 * MIB)
        job, token = app.restore_job(f"ws@{when}")
        assert job.version == versions[1]
        proc = run_client(app.url, job, token, target)
        assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == states[1]
