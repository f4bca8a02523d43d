"""Capture: a reference machine becomes a new version of the image; a second machine
with an empty, *larger* disk restores that version and boots it, and its GPT is sound
(backup header moved to the end of the larger disk)."""

from __future__ import annotations

import secrets
import shutil
import subprocess

from appliance.lab import steps
from appliance.lab.masterimage import rewrite_marker
from tests.lab.conftest import E2ELab, record_figure

GiB = 1 << 30


def test_capture_then_restore_onto_a_larger_disk(e2e: E2ELab) -> None:
    # The reference machine: the master system, changed the way a technician would.
    marker = f"captured-{secrets.token_hex(3)}"
    ref_disk = e2e.run.workdir / "e2e-ref.disk.img"
    shutil.copyfile(e2e.image.path, ref_disk)
    rewrite_marker(ref_disk, marker)
    ref = e2e.machine("e2e-ref", "bios", disk=ref_disk)
    steps.register(e2e.home, [ref])
    capture_id = steps.capture(e2e.home, ref.name, steps.SAMPLE_IMAGE)
    watch = steps.Watch()
    e2e.start(ref)
    steps.wait_jobs(e2e.home, [capture_id], [ref], 600, watch=watch)
    version = steps.job(e2e.home, capture_id).result_version
    assert version and version != e2e.version
    ref.stop()

    big = e2e.machine("e2e-big", "uefi", disk_size=e2e.image.size + GiB // 2)
    steps.register(e2e.home, [big])
    [restore_id] = steps.restore(e2e.home, [big.name], f"{steps.SAMPLE_IMAGE}@{version}")
    e2e.start(big)
    steps.wait_jobs(e2e.home, [restore_id], [big], 600)
    steps.wait_booted([big], lambda _: f"SLATE-MARKER {marker} firmware=uefi", 240)

    check = subprocess.run(["sgdisk", "-v", str(big.disks[0][0])], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No problems found" in check.stdout, check.stdout
    record_figure("capture", **watch.figures(capture_id))
