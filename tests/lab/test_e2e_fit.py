"""A smaller disk, end to end (issue 13): the lab's Debian master is fitted with
`slate image fit` to a disk 16 MiB smaller (its last partition, the NTFS data one, is
shrunk), a BIOS machine with that disk PXE-boots, restores the fitted version, and the
restored Debian boots; the NTFS volume is clean and holds the master's files."""

from __future__ import annotations

import json
import subprocess

from appliance.lab import steps
from appliance.lab.masterimage import data_files
from tests.lab.conftest import E2ELab, record_figure

MIB = 1024 * 1024
RESTORE_TIMEOUT = 600
BOOT_TIMEOUT = 240


def test_the_fitted_master_restores_onto_a_smaller_disk_and_boots(e2e: E2ELab) -> None:
    small = e2e.image.size - 16 * MIB
    ref = f"{steps.SAMPLE_IMAGE}@{e2e.version}"
    made = json.loads(steps.slate(e2e.home, "image", "fit", ref, "--size", str(small),
                                  "--json").stdout)  # fmt: skip
    assert made["size"] == small and made["partition"] == 4
    m = e2e.machine("e2e-fit", "bios", disk_size=small)
    steps.register(e2e.home, [m])
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
    p4 = next(p for p in json.loads(out)["partitiontable"]["partitions"] if p["node"].endswith("4"))
    start, size = int(p4["start"]) * 512, int(p4["size"]) * 512
    assert start + size <= small
    loop = subprocess.run(["losetup", "--find", "--show", "--read-only", "--offset", str(start),
                           "--sizelimit", str(size), str(disk)], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    try:
        check = subprocess.run(["ntfsfix", "--no-action", loop], capture_output=True, text=True)
        cat = ["ntfscat", loop]
        got = {r: subprocess.run([*cat, r], capture_output=True, check=True).stdout.decode()
               for r in data_files()}  # fmt: skip
    finally:
        subprocess.run(["losetup", "--detach", loop], check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert got == data_files()
    record_figure("restore-fitted-bios", **watch.figures(job_id), boot_after_done=booted[m.name])
