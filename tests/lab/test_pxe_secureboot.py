"""Secure Boot: OVMF with Microsoft keys enrolled boots the signed chain from Slate.

shimx64.efi (signed by Microsoft) → grubx64.efi (Debian's signed grubnetx64) → the
generated grub/grub.cfg → /boot/<mac>.grub over HTTP → Debian's signed kernel + the
job's initramfs.  Unsigned iPXE cannot run here, so `--secure-boot` swaps the chain.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.conftest import PxeLab

MAC = "52:54:00:53:00:01"


def test_secure_boot_machine_boots_its_job_through_shim_and_grub(pxe_lab: PxeLab) -> None:
    lab = pxe_lab
    lab.slate("host", "add", MAC, "--name", "sb1")
    lab.slate("job", "capture", "--host", "sb1", "--image", "lab-test")
    job_id = json.loads(lab.slate("job", "list", "--json"))[0]["id"]
    lab.serve("--dhcp", "full", "--pool", "10.78.0.100-10.78.0.150", "--secure-boot")
    machine = lab.machine("sb1", "uefi-sb", MAC, memory=512)
    machine.start()
    try:
        console = machine.wait_for(lab.MARKER, timeout=240)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{lab.evidence()}") from exc
    assert "Secure boot enabled" in console
    line = next(x for x in console.splitlines() if lab.MARKER in x)
    assert f"slate.job={job_id}" in line
    assert re.search(r"slate\.token=[0-9a-f]{16,}", line)
    log = lab.serve_proc.output() if lab.serve_proc else ""
    assert "shimx64.efi" in log and "grubx64.efi" in log and "grub/grub.cfg" in log
