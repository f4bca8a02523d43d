"""The steps a lab session takes, shared by ``slate demo``, ``slate lab up`` and the
end-to-end tests: get the sample image and the boot environment into a data directory,
register lab machines, start restore jobs and watch them to the end.

Everything goes through Slate's own commands and Python API (the same paths a
technician uses); nothing here reaches around them.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import db
from appliance.config import Layout
from appliance.errors import NotFound, SlateError
from appliance.jobs import Job, Jobs
from appliance.jobs.states import RETRYABLE
from appliance.lab.masterimage import MasterImage
from appliance.lab.qemu import Machine
from appliance.machines import Inventory

SAMPLE_IMAGE = "sample"
ACTOR = "lab"
Log = Callable[[str], None]


class LabStepError(SlateError):
    """A lab step (import, boot, restore) did not finish as expected."""


def slate(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``slate`` CLI against ``home``."""
    proc = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise LabStepError(
            f"`slate {' '.join(args)}` failed (exit {proc.returncode})",
            hint=(proc.stderr or proc.stdout).strip()[-1500:],
        )
    return proc


def connect(home: Path) -> Any:
    return db.connect(Layout(home).db)


# --- what a data directory needs -------------------------------------------------------


def ensure_bootenv(home: Path, log: Log, *, source: Path | None = None) -> Path:
    """The boot environment in ``home`` (``vmlinuz`` + ``initrd.img``).

    ``source``: a folder with an already built pair (tests share one build); otherwise
    ``slate bootimage build`` runs (it caches its own work)."""
    target = Layout(home).bootimage
    names = ("vmlinuz", "initrd.img")
    if all((target / n).exists() for n in names):
        return target
    target.mkdir(parents=True, exist_ok=True)
    if source is not None:
        for n in names:
            _link_or_copy(source / n, target / n)
        return target
    log("building the boot environment (slate bootimage build; cached after the first run)")
    from appliance.lab.masterimage import default_cache_dir

    slate(home, "bootimage", "build", "--cache-dir", str(default_cache_dir()))
    missing = [n for n in names if not (target / n).exists()]
    if missing:
        raise LabStepError(
            f"`slate bootimage build` left no {', '.join(missing)} in {target}",
            hint="run `slate bootimage build` by hand and read its output",
        )
    return target


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        dst.hardlink_to(src)
    except OSError:
        dst.write_bytes(src.read_bytes())


def ensure_sample_image(home: Path, image: MasterImage, log: Log, name: str = SAMPLE_IMAGE) -> str:
    """Import the built master image as ``name`` unless this very build is there already;
    returns the version."""
    note = f"slate lab master image {image.spec.key()}"
    for manifest in _versions(home, name):
        if manifest.note == note:
            return str(manifest.version)
    log(f"importing the master image as '{name}' (slate image import)")
    slate(home, "image", "import", str(image.path), "--name", name, "--note", note)
    for manifest in _versions(home, name):
        if manifest.note == note:
            return str(manifest.version)
    raise LabStepError(f"`slate image import` reported success but {name} has no such version")


def _versions(home: Path, name: str) -> list[Any]:
    from appliance.store.library import Store

    try:
        return list(Store(Layout(home)).versions(name))
    except NotFound:
        return []


# --- hosts and jobs ---------------------------------------------------------------------


def register(home: Path, machines: Iterable[Machine], room: str | None = None) -> None:
    """Make the lab machines known hosts (by MAC), in ``room`` if given."""
    conn = connect(home)
    try:
        inv = Inventory(conn)
        for m in machines:
            if inv.find_host(m.mac) is None:
                inv.add_host(m.mac, m.name, actor=ACTOR, room=room)
    finally:
        conn.close()


def restore(home: Path, names: Sequence[str], ref: str, **options: Any) -> list[int]:
    """A restore job per host name; returns the job ids."""
    conn = connect(home)
    try:
        jobs = Jobs(conn, Layout(home))
        return [jobs.restore(n, ref, actor=ACTOR, options=options or None).id for n in names]
    finally:
        conn.close()


def capture(home: Path, name: str, image: str) -> int:
    conn = connect(home)
    try:
        return Jobs(conn, Layout(home)).capture(name, image, actor=ACTOR).id
    finally:
        conn.close()


def job(home: Path, job_id: int) -> Job:
    conn = connect(home)
    try:
        return Jobs(conn, Layout(home)).get(job_id)
    finally:
        conn.close()


_SPLIT = re.compile(r"roomcast: ([\d,]+) MiB by multicast, ([\d,]+) MiB by HTTP")


def transfer_split(home: Path, job_id: int) -> tuple[int, int] | None:
    """(MiB by multicast, MiB by HTTP) of a restore, from its client's summary line."""
    conn = connect(home)
    try:
        for row in Jobs(conn, Layout(home)).log_lines(job_id, 1000):
            m = _SPLIT.search(row["line"])
            if m:
                return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
        return None
    finally:
        conn.close()


@dataclass
class Watch:
    """When each job was first seen in each state (monotonic seconds)."""

    started: float = field(default_factory=time.monotonic)
    seen: dict[int, dict[str, float]] = field(default_factory=dict)
    last: dict[int, Job] = field(default_factory=dict)
    size: dict[int, int] = field(default_factory=dict)  # largest byte total reported

    def note(self, j: Job) -> bool:
        states = self.seen.setdefault(j.id, {})
        new = j.state not in states
        states.setdefault(j.state, time.monotonic())
        self.last[j.id] = j
        self.size[j.id] = max(self.size.get(j.id, 0), j.bytes_total, j.verified_bytes)
        return new

    def figures(self, job_id: int) -> dict[str, float | None]:
        """Seconds from power-on to the restore start, restore time, rate (bytes/s)."""
        s = self.seen.get(job_id, {})
        run, done = s.get("running"), s.get("done")
        total = self.size.get(job_id, 0)
        took = done - run if run is not None and done is not None else None
        return {
            "to_restore_start": run - self.started if run is not None else None,
            "restore_seconds": took,
            "bytes": float(total),
            "rate": total / took if took else None,
        }


def wait_jobs(
    home: Path,
    job_ids: Sequence[int],
    machines: Sequence[Machine],
    timeout: float,
    *,
    watch: Watch | None = None,
    on_update: Callable[[Job], None] | None = None,
) -> Watch:
    """Wait until every job is done; fail at once on a failed job or a dead machine."""
    watch = watch or Watch()
    deadline = time.monotonic() + timeout
    conn = connect(home)
    try:
        jobs = Jobs(conn, Layout(home))
        pending = set(job_ids)
        while pending:
            for jid in sorted(pending):
                j = jobs.get(jid)
                watch.note(j)
                if on_update:
                    on_update(j)
                if j.state == "done":
                    pending.discard(jid)
                elif j.state in RETRYABLE:
                    raise LabStepError(
                        f"job {jid} ({j.action} of {j.host_name}) {j.state}: {j.reason}",
                        hint=_tails(machines) + " | log: " + _job_log(jobs, jid),
                    )
            _check_alive(machines, pending, jobs)
            if pending and time.monotonic() > deadline:
                states = {jid: jobs.get(jid).state for jid in pending}
                raise LabStepError(
                    f"jobs not done within {timeout:.0f} s: {states}", hint=_tails(machines)
                )
            time.sleep(0.5)
    finally:
        conn.close()
    return watch


def _check_alive(machines: Sequence[Machine], pending: set[int], jobs: Jobs) -> None:
    """Fail when a machine whose job is still pending has stopped.  A machine that is
    done may stop while others work (the lab's restored system powers off)."""
    waiting = {jobs.get(jid).host for jid in pending}
    for m in machines:
        if m.mac in waiting and m.proc is not None and m.proc.poll() is not None:
            raise LabStepError(
                f"machine {m.name} powered off (QEMU exit {m.proc.returncode}) while its "
                "job was not done",
                hint=_tails([m]),
            )


def _job_log(jobs: Jobs, job_id: int) -> str:
    return " / ".join(r["line"] for r in jobs.log_lines(job_id, 15))


def _tails(machines: Sequence[Machine]) -> str:
    return " || ".join(f"{m.name}: ...{m.console()[-700:]!r}" for m in machines)


def wait_booted(
    machines: Sequence[Machine], line: Callable[[Machine], str], timeout: float
) -> dict[str, float]:
    """Wait for each machine's marker line and its power-off; seconds each took."""
    started = time.monotonic()
    took: dict[str, float] = {}
    deadline = started + timeout
    for m in machines:
        m.wait_for(line(m), max(deadline - time.monotonic(), 1))
        took[m.name] = time.monotonic() - started
        m.wait_exit(max(deadline - time.monotonic(), 1))
    return took


# --- a lab left running (slate lab up) -------------------------------------------------

LAB_ROOM = "lab"
EMPTY_DISK = 2 * 1024 * 1024 * 1024
# SeaBIOS retries the boot order after this long when nothing booted (empty disk, no
# job yet), so a job created later in the console is picked up without a power cycle.
BIOS_RETRY = ["-boot", "reboot-timeout=10000"]


def lab_up(
    home: Path,
    *,
    bios: int,
    uefi: int,
    port: int,
    accel: str,
    memory: int,
    with_image: bool,
    log: Log,
) -> dict[str, Any]:
    """Start a lab and leave it running; its state (``harness.save_state``) also records
    the hosts it registered (``hosts``) and its console login (``login``)."""
    from appliance.lab import harness, owned
    from appliance.lab.masterimage import build_master_image
    from appliance.lab.qemu import random_mac

    refuse_second_lab(home)
    disk_size = EMPTY_DISK
    if with_image:
        image = build_master_image(log=log)
        ensure_bootenv(home, log)
        ensure_sample_image(home, image, log)
        disk_size = max(disk_size, image.size)
    plan, skipped = owned.plan_for(home, [("bios", bios), ("uefi", uefi)], random_mac)
    for name in skipped:
        log(f"{name} is a registered host the lab did not make: left alone, name not used "
            f"(if it is a leftover of an older lab: slate host rm {name})")  # fmt: skip
    login = owned.ensure_login(home)
    run = harness.LabRun(home, Layout(home).lab_work, accel=accel, console_port=port)
    run.start(detach=True)
    created: list[dict[str, str]] = []
    try:
        for p in plan:
            extra = BIOS_RETRY if p.firmware == "bios" else []
            run.add_machine(p.name, p.firmware, disk_size=disk_size, memory=memory,  # type: ignore[arg-type]
                            mac=p.mac, extra_args=extra)  # fmt: skip
        created = owned.register(home, plan, LAB_ROOM)
        state = {**run.state(), "hosts": created, "login": login}
        harness.save_state(home, state)
        for name in run.machines:
            run.start_machine(name)
        state = {**run.state(), "hosts": created, "login": login}
        harness.save_state(home, state)
    except BaseException:
        run.stop()
        with contextlib.suppress(Exception):  # the first error is the one to report
            owned.remove(home, created)
        Layout(home).lab_state.unlink(missing_ok=True)
        raise
    return state


def lab_down(home: Path) -> list[str]:
    """Stop what ``lab_up`` started and remove the hosts it registered (only those)."""
    from appliance.lab import harness, owned

    state = harness.load_state(home)
    lines = harness.stop_from_state(home)
    return lines + owned.remove(home, state.get("hosts", []))


def refuse_second_lab(home: Path) -> None:
    from appliance.errors import Conflict
    from appliance.lab import harness

    try:
        state = harness.status_from_state(home)
    except NotFound:
        return
    if any(p["alive"] for p in state["procs"]):
        raise Conflict(
            f"a lab ({state['prefix']}) is already running for {home}",
            hint="see `slate lab status`, stop it with `slate lab down`",
        )
    lab_down(home)  # leftovers of a lab whose processes are gone


def job_id_for(home: Path, host: str) -> int:
    """The newest job of ``host`` (by name or MAC)."""
    conn = connect(home)
    try:
        jobs = Jobs(conn, Layout(home)).list_jobs(include_ended=True, host=host)
    finally:
        conn.close()
    if not jobs:
        raise NotFound(f"host {host} has no job")
    return jobs[0].id
