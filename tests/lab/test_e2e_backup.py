"""The disaster path in QEMU, and capture end to end: a machine, changed from the master
the way a technician would, has its nightly backup captured (the job made by the
scheduler) as a new version; its disk dies and is replaced by a *larger* empty one; a
restore "as of" the backup's time puts the system back: the machine boots it, and its
GPT is sound (the backup header moved to the end of the larger disk)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

from appliance.backups.schedules import Schedules
from appliance.config import Layout
from appliance.lab import steps
from appliance.lab.masterimage import rewrite_marker
from appliance.refs import version_time
from appliance.store import policy as policies
from tests.lab.conftest import E2ELab, record_figure

IMAGE = "ws-e2e"
GiB = 1 << 30


def test_nightly_backup_onto_a_larger_new_disk_restored_as_of(e2e: E2ELab) -> None:
    marker = f"backup-{secrets.token_hex(3)}"
    disk = e2e.run.workdir / "e2e-ws.disk.img"
    shutil.copyfile(e2e.image.path, disk)
    rewrite_marker(disk, marker)
    ws = e2e.machine("e2e-ws", "bios", disk=disk)
    steps.register(e2e.home, [ws])
    conn = steps.connect(e2e.home)
    try:
        policies.put(conn, policies.ImagePolicy(IMAGE, auto_promote=True, keep_daily=7))
        # A test clock a day ahead, so `slate serve`'s own housekeeping (real clock) never
        # sees this occurrence: the job is made here, once.
        since = datetime.now(UTC) + timedelta(days=1)
        sched = Schedules(conn, Layout(e2e.home))
        sched.add(action="capture", image=IMAGE, every="daily 02:00", host=ws.name,
                      actor="lab-test", now=since)  # fmt: skip
        night = datetime.combine(since.date() + timedelta(days=1), datetime.min.time())
        occurrence = night.replace(hour=2).astimezone()  # 02:00 local, the next night
        ((_, _, [capture_id]),) = sched.run_once(occurrence.astimezone(UTC) + timedelta(seconds=5))
        assert sched.run_once(occurrence.astimezone(UTC) + timedelta(seconds=35)) == []
    finally:
        conn.close()
    watch = steps.Watch()
    e2e.start(ws)
    steps.wait_jobs(e2e.home, [capture_id], [ws], 600, watch=watch)
    version = steps.job(e2e.home, capture_id).result_version
    assert version
    ws.stop()
    record_figure("capture", **watch.figures(capture_id))

    # The disk dies: its replacement is larger (half a GiB), all zeros.
    size = disk.stat().st_size + GiB // 2
    with open(disk, "wb") as fh:
        fh.truncate(size)
    as_of = version_time(version).strftime("%Y-%m-%dT%H:%M:%SZ")
    [restore_id] = steps.restore(e2e.home, [ws.name], f"{IMAGE}@{as_of}")
    assert steps.job(e2e.home, restore_id).version == version
    e2e.start(ws)
    steps.wait_jobs(e2e.home, [restore_id], [ws], 600)
    steps.wait_booted([ws], lambda _: f"SLATE-MARKER {marker} firmware=bios", 240)
    check = subprocess.run(["sgdisk", "-v", str(disk)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No problems found" in check.stdout, check.stdout
