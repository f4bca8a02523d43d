"""A small classroom: three machines in one room are reimaged at once by one command,
and all three boot the restored system."""

from __future__ import annotations

import time

from appliance.lab import steps
from tests.lab.conftest import E2ELab, record_figure

ROOM = "room101"


def test_three_machines_in_a_room_reimaged_by_one_command(e2e: E2ELab) -> None:
    kinds = [("bios", "pc1"), ("uefi", "pc2"), ("bios", "pc3")]
    machines = [e2e.machine(f"e2e-{n}", fw, memory=448) for fw, n in kinds]  # type: ignore[arg-type]
    steps.register(e2e.home, machines, room=ROOM)

    # Pinned to the imported version: the capture test adds newer versions of this image.
    ref = f"{steps.SAMPLE_IMAGE}@{e2e.version}"
    out = steps.slate(e2e.home, "job", "restore", "--room", ROOM, "--image", ref)
    job_ids = [steps.job_id_for(e2e.home, m.name) for m in machines]
    assert len(set(job_ids)) == 3, out.stdout

    watch = steps.Watch()
    started = e2e.start(*machines)
    steps.wait_jobs(e2e.home, job_ids, machines, 900, watch=watch)
    firmware = {m.name: fw for m, (fw, _) in zip(machines, kinds, strict=True)}
    steps.wait_booted(machines, lambda m: e2e.image.marker_line(firmware[m.name]), 300)
    for m in machines:
        assert e2e.image.marker_line(firmware[m.name]) in m.console()
    # The room restored through roomcast: each job says what came by multicast and by HTTP.
    split = {}
    for m, j in zip(machines, job_ids, strict=True):
        got = split[m.name] = steps.transfer_split(e2e.home, j)
        log = steps.slate(e2e.home, "job", "show", str(j)).stdout
        assert got is not None and got[0] > 0, f"{m.name}: {got}\n{log}"  # MiB by multicast
    record_figure(
        "classroom-3",
        all_restored_seconds=max(watch.seen[j]["done"] for j in job_ids) - started,
        per_machine=[watch.figures(j) for j in job_ids],
        total_seconds=time.monotonic() - started,
        multicast_http_mib=split,
    )
