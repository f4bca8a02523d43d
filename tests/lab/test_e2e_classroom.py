"""A small classroom: three machines in one room are reimaged at once by one command,
and all three boot the restored system, each as itself (its inventory host name and the
machine-id the appliance keeps for it), and the same again after another restore."""

from __future__ import annotations

import time

from appliance import identity
from appliance.lab import steps
from appliance.lab.qemu import Machine
from tests.lab.conftest import E2ELab, record_figure

ROOM = "room101"


def test_three_machines_in_a_room_reimaged_by_one_command(e2e: E2ELab) -> None:
    kinds = [("bios", "pc1"), ("uefi", "pc2"), ("bios", "pc3")]
    machines = [e2e.machine(f"e2e-{n}", fw) for fw, n in kinds]  # type: ignore[arg-type]
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
    # Each machine booted as itself: the inventory's host name, the machine-id the
    # appliance keeps for it (not the master's slate-lab / 5a7e1ab0...).
    kept = _kept_machine_ids(e2e, machines)
    booted_as = {m.name: e2e.image.identities(m.console()) for m in machines}
    assert booted_as == {m.name: [(m.name, kept[m.name])] for m in machines}, booted_as
    assert len(set(kept.values())) == 3
    # The room restored through roomcast: each job says what came by multicast and by HTTP.
    # Every job states its split; the session carried data to at least two seats.  Not
    # every seat: here HTTP is unshaped (~200 Mbit/s) against a 20 Mbit/s session, so a
    # seat that the first pass left behind (it joined while the others' chunks went by)
    # may take everything by HTTP before multicast catches up with it: one lab run of
    # 2026-12-02 saw 0/208/104 MiB (the seats that joined later took their misses by HTTP
    # too; the reason the first seat got no multicast at all is not yet found, issue 11).
    split = {}
    for m, j in zip(machines, job_ids, strict=True):
        got = split[m.name] = steps.transfer_split(e2e.home, j)
        assert got is not None, steps.slate(e2e.home, "job", "show", str(j)).stdout
    assert sum(1 for mc, _ in split.values() if mc > 0) >= 2, split  # MiB by multicast
    record_figure(
        "classroom-3",
        all_restored_seconds=max(watch.seen[j]["done"] for j in job_ids) - started,
        per_machine=[watch.figures(j) for j in job_ids],
        total_seconds=time.monotonic() - started,
        multicast_http_mib=split,
    )

    # Restored again, a machine is the same machine.  One machine, not the room: a second
    # room restore would add the whole room's time again to the lab tier; one machine
    # restored twice is the same code path and the same check (docs/identity.md).
    again = machines[0]
    second = time.monotonic()
    redo = steps.restore(e2e.home, [again.name], ref)
    again.stop()  # it powered off after its marker; its QEMU has exited
    e2e.start(again)
    steps.wait_jobs(e2e.home, redo, [again], 900)
    steps.wait_booted([again], lambda m: e2e.image.marker_line(firmware[m.name]), 300)
    assert e2e.image.identities(again.console()) == [(again.name, kept[again.name])]
    record_figure("classroom-restore-again", seconds=time.monotonic() - second)


def _kept_machine_ids(e2e: E2ELab, machines: list[Machine]) -> dict[str, str]:
    conn = steps.connect(e2e.home)
    try:
        return {m.name: identity.machine_id(conn, m.mac) for m in machines}
    finally:
        conn.close()
