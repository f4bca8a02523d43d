"""End to end, one machine per firmware: PXE → restore → reboot → the restored Debian
boots (its marker line on the serial console says which firmware), and the disk holds
exactly the image's bytes.  The client's API calls and manifest went over the client
channel over TLS, pinned by the certificate appended to the initrd the appliance served."""

from __future__ import annotations

import pytest

from appliance.lab import steps
from tests.lab.conftest import E2ELab, first_difference, record_figure

RESTORE_TIMEOUT = 600
BOOT_TIMEOUT = 240


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_pxe_restore_then_the_restored_system_boots(e2e: E2ELab, firmware: str) -> None:
    m = e2e.machine(f"e2e-{firmware}", firmware)  # type: ignore[arg-type]
    steps.register(e2e.home, [m])
    [job_id] = steps.restore(e2e.home, [m.name], f"{steps.SAMPLE_IMAGE}@{e2e.version}")
    watch = steps.Watch()
    e2e.start(m)

    steps.wait_jobs(e2e.home, [job_id], [m], RESTORE_TIMEOUT, watch=watch)
    booted = steps.wait_booted([m], lambda _: e2e.image.marker_line(firmware), BOOT_TIMEOUT)

    console = m.console()
    assert e2e.image.marker_line(firmware) in console
    assert "client API over TLS to 10.77.0.1:8444, pinned certificate" in console
    if firmware == "uefi":
        # BootNext: the reboot after the restore goes straight to the disk, not through
        # PXEv4, PXEv6 and HTTP boot first.
        said = "the next boot starts the restored disk once"
        assert said in console
        reboot = console.split(said, 1)[1].split(e2e.image.marker_line(firmware), 1)[0]
        assert "Start PXE" not in reboot and "HTTP Boot" not in reboot
    job = steps.job(e2e.home, job_id)
    assert job.state == "done"
    assert job.verified_bytes > 0
    diff = first_difference(m.disks[0][0], e2e.image.path)
    assert diff is None, f"restored disk differs from the image at offset {diff}"
    record_figure(f"restore-{firmware}", **watch.figures(job_id), boot_after_done=booted[m.name])
