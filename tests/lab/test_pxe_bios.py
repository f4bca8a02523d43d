"""BIOS machines network-boot through `slate serve` in full DHCP mode (QEMU, TCG).

Two machines boot at once: pc1 has a capture job and must come up in the job's kernel +
initramfs with slate.job/slate.token on its command line; pc2 is registered without a
job and must be sent to its local disk, whose MBR prints a marker (the disk is left
as it was, and no job is made for it).  Both use the NIC's
iPXE ROM (virtio-net), which DHCPs as iPXE and fetches /boot/<mac>.ipxe directly.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.conftest import PxeLab

MAC_JOB = "52:54:00:51:00:01"
MAC_LOCAL = "52:54:00:51:00:02"


def test_bios_machines_boot_their_job_or_their_local_disk(pxe_lab: PxeLab) -> None:
    lab = pxe_lab
    lab.slate("host", "add", MAC_JOB, "--name", "pc1")
    lab.slate("host", "add", MAC_LOCAL, "--name", "pc2")
    lab.slate("job", "capture", "--host", "pc1", "--image", "lab-test")
    jobs = json.loads(lab.slate("job", "list", "--json"))
    job_id = next(j["id"] for j in jobs if j["host"] == MAC_JOB)
    lab.serve("--dhcp", "full", "--pool", "10.78.0.100-10.78.0.150")

    with_job = lab.machine("pc1", "bios", MAC_JOB, memory=384)
    disk = lab.marker_disk("pc2.img")
    before = disk.read_bytes()
    local = lab.machine("pc2", "bios", MAC_LOCAL, memory=256, disks=[(disk, "S2")])
    with_job.start()
    local.start()
    try:
        console = with_job.wait_for(lab.MARKER, timeout=150)
        local.wait_for(lab.LOCAL_MARKER, timeout=120)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{lab.evidence()}") from exc
    line = next(x for x in console.splitlines() if lab.MARKER in x)
    assert f"slate.job={job_id}" in line
    assert re.search(r"slate\.token=[0-9a-f]{16,}", line)
    assert f"slate.mac={MAC_JOB}" in line
    assert "boots its local disk" in local.console()
    # A known machine without a job: sent to its disk, which nothing touched, and no job
    # was made for it.
    local.stop()  # its MBR halts
    assert disk.read_bytes() == before
    assert [
        j for j in json.loads(lab.slate("job", "list", "--json")) if j["host"] == MAC_LOCAL
    ] == []
    with_job.wait_exit(60)  # the marker init powers off
    job = json.loads(lab.slate("job", "show", str(job_id), "--json"))
    assert job["state"] == "booting"
