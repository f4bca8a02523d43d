"""A known machine without a job network-boots, is sent to its local disk, and the disk
is not touched."""

from __future__ import annotations

import shutil

from appliance.jobs import testing as job_rows
from appliance.lab import steps
from tests.lab.conftest import E2ELab, sha256_file


def test_machine_without_job_boots_its_disk_untouched(e2e: E2ELab) -> None:
    disk = e2e.run.workdir / "e2e-local.disk.img"
    shutil.copyfile(e2e.image.path, disk)
    before = sha256_file(disk)
    m = e2e.machine("e2e-local", "bios", disk=disk)
    steps.register(e2e.home, [m])
    e2e.start(m)

    steps.wait_booted([m], lambda _: e2e.image.marker_line("bios"), 300)

    console = m.console()
    assert "Slate:" in console or "iPXE" in console, "the machine did not network-boot first"
    assert sha256_file(disk) == before
    conn = steps.connect(e2e.home)
    try:
        rows = job_rows.rows(conn, "id", host=m.mac)
    finally:
        conn.close()
    assert rows == []
