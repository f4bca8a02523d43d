"""A smaller disk, end to end (issue 13): the lab's Debian master is fitted with
`slate image fit` to a disk 16 MiB smaller (its last partition, the NTFS data one, is
shrunk), a BIOS machine with that disk PXE-boots, restores the fitted version, and the
restored Debian boots; the NTFS volume is clean and holds the master's files.  The
machine also has a post-restore hook: it runs in the real boot environment, with the
restored root filesystem mounted where docs/hooks.md says, and what it writes there is
on the disk."""

from __future__ import annotations

import json
import subprocess

from appliance.lab import steps
from appliance.lab.masterimage import data_files
from tests.lab.conftest import E2ELab, record_figure

MIB = 1024 * 1024
RESTORE_TIMEOUT = 600
BOOT_TIMEOUT = 240


HOOK = b"""#!/bin/sh
set -e
test -f "$SLATE_MNT_P3/etc/os-release"
echo "hooked $SLATE_HOST $SLATE_IMAGE@$SLATE_VERSION" > "$SLATE_MNT_P3/etc/slate-hook"
echo "mounts: $SLATE_MOUNTS"
"""


def test_the_fitted_master_restores_onto_a_smaller_disk_and_boots(e2e: E2ELab, tmp_path) -> None:
    small = e2e.image.size - 16 * MIB
    ref = f"{steps.SAMPLE_IMAGE}@{e2e.version}"
    made = json.loads(steps.slate(e2e.home, "image", "fit", ref, "--size", str(small),
                                  "--json").stdout)  # fmt: skip
    assert made["size"] == small and made["partition"] == 4
    m = e2e.machine("e2e-fit", "bios", disk_size=small)
    steps.register(e2e.home, [m])
    (tmp_path / "10-lab.sh").write_bytes(HOOK)
    steps.slate(e2e.home, "hook", "add", "--host", m.name, str(tmp_path / "10-lab.sh"))
    [job_id] = steps.restore(e2e.home, [m.name], f"{steps.SAMPLE_IMAGE}@{made['version']}")
    watch = steps.Watch()
    e2e.start(m)
    steps.wait_jobs(e2e.home, [job_id], [m], RESTORE_TIMEOUT, watch=watch)
    booted = steps.wait_booted([m], lambda _: e2e.image.marker_line("bios"), BOOT_TIMEOUT)
    assert steps.job(e2e.home, job_id).state == "done"
    e2e.run.stop_machine(m.name)  # its disk is read below
    disk = m.disks[0][0]
    out = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    parts = {p["node"][-1]: p for p in json.loads(out)["partitiontable"]["partitions"]}
    start, size = int(parts["4"]["start"]) * 512, int(parts["4"]["size"]) * 512
    assert start + size <= small
    ntfs = attach(disk, parts["4"])
    try:
        check = subprocess.run(["ntfsfix", "--no-action", ntfs], capture_output=True, text=True)
        cat = ["ntfscat", ntfs]
        got = {r: subprocess.run([*cat, r], capture_output=True, check=True).stdout.decode()
               for r in data_files()}  # fmt: skip
    finally:
        detach(ntfs)
    assert check.returncode == 0, check.stdout + check.stderr
    assert got == data_files()
    root = attach(disk, parts["3"])
    try:
        hooked = subprocess.run(["debugfs", "-R", "cat /etc/slate-hook", root],
                                capture_output=True, text=True).stdout  # fmt: skip
    finally:
        detach(root)
    assert hooked == f"hooked e2e-fit {steps.SAMPLE_IMAGE}@{made['version']}\n"
    conn = steps.connect(e2e.home)
    rows = conn.execute("SELECT line FROM job_log WHERE job=? ORDER BY id", (job_id,))
    log = "\n".join(r["line"] for r in rows)
    conn.close()
    assert "hook 10-lab.sh (host " in log and "hook 10-lab.sh: mounts: /mnt/slate/p" in log, log
    record_figure("restore-fitted-bios", **watch.figures(job_id), boot_after_done=booted[m.name])


def attach(disk: object, part: dict[str, object]) -> str:
    """A read-only loop device over one partition (sfdisk's sectors of 512 bytes)."""
    start, size = int(str(part["start"])) * 512, int(str(part["size"])) * 512
    return subprocess.run(["losetup", "--find", "--show", "--read-only", "--offset", str(start),
                           "--sizelimit", str(size), str(disk)], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def detach(dev: str) -> None:
    subprocess.run(["losetup", "--detach", dev], check=False)
