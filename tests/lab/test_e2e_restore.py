"""End to end, one machine per firmware: PXE → restore → reboot → the restored Debian
boots (its marker line on the serial console says which firmware), and the disk holds
exactly the image's bytes.  The client's API calls and manifest went over the client
channel over TLS, pinned by the certificate prepended to the initrd the appliance served."""

from __future__ import annotations

import json

import pytest

from appliance.lab import steps
from appliance.machines import identity
from tests.lab.conftest import E2ELab, first_difference, record_figure

RESTORE_TIMEOUT = 600
BOOT_TIMEOUT = 240


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_pxe_restore_then_the_restored_system_boots(e2e: E2ELab, firmware: str) -> None:
    m = e2e.machine(f"e2e-{firmware}", firmware)  # type: ignore[arg-type]
    steps.register(e2e.home, [m])
    # Byte for byte: with identity off nothing is written after the verified chunks (the
    # classroom test checks the identity a restore writes; docs/identity.md).
    _identity(e2e, False)
    try:
        [job_id] = steps.restore(e2e.home, [m.name], f"{steps.SAMPLE_IMAGE}@{e2e.version}")
        watch = steps.Watch()
        e2e.start(m)
        steps.wait_jobs(e2e.home, [job_id], [m], RESTORE_TIMEOUT, watch=watch)
    finally:
        _identity(e2e, True)
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
    assert_boot_timeline(e2e, m.name, firmware, job_id)
    diff = first_difference(m.disks[0][0], e2e.image.path)
    assert diff is None, f"restored disk differs from the image at offset {diff}"
    record_figure(f"restore-{firmware}", **watch.figures(job_id), boot_after_done=booted[m.name])


def assert_boot_timeline(e2e: E2ELab, name: str, firmware: str, job_id: int) -> None:
    """The machine's timeline (issue 14) holds this boot's events in order: DHCP offer
    (firmware, address), [TFTP on UEFI], boot script deciding the job, the boot
    environment, the client's call, the first chunk, phases, done."""
    events = json.loads(steps.slate(e2e.home, "host", "timeline", name, "--json").stdout)
    want = ["dhcp-offer", *(["tftp"] if firmware == "uefi" else []), "boot-script", "bootenv",
            "client-call", "first-chunk", "phase", "done"]  # fmt: skip
    mine = [e for e in events if e["job"] in (None, job_id)]
    found, i = [], 0
    for e in mine:
        if (
            i < len(want)
            and e["kind"] == want[i]
            and (e["kind"] != "boot-script" or e["facts"]["decision"] == "job")
        ):
            found.append(e)
            i += 1
    shown = "\n".join(f"{e['at']} {e['kind']}: {e['detail']}" for e in events)
    assert [e["kind"] for e in found] == want, f"timeline of {name}:\n{shown}"
    offer = found[0]["facts"]
    assert offer["firmware"] and offer["address"].startswith("10.77.0."), shown
    assert found[want.index("boot-script")]["job"] == job_id
    assert found[-1]["detail"] == f"job {job_id} done"


def _identity(e2e: E2ELab, on: bool) -> None:
    conn = steps.connect(e2e.home)
    try:
        identity.set_image_enabled(conn, steps.SAMPLE_IMAGE, on, actor="lab-test")
    finally:
        conn.close()
