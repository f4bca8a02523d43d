"""The client's run: settings → network → job → restore or capture → report → reboot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from appliance.errors import Conflict, SlateError
from bootimage.client import checkup, disks, net
from bootimage.client.api import Api, PinMismatch, Unreachable
from bootimage.client.cmdline import Settings, parse_args
from bootimage.client.progress import Reporter, console_streams

DEFAULT_GIVE_UP_AFTER = 600.0
DEFAULT_HOLD = 1800.0  # s a machine waits for a power request after a failure or register
DUMP_BEGIN = "----- slate disks begin -----"
DUMP_END = "----- slate disks end -----"
UNPACKED = "/.slate-unpacked"  # bootimage/builder/build.py UNPACKED: the initramfs's last file


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_args(argv)
    except SlateError as exc:
        print(
            f"slate: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr
        )
        return 2
    stream: TextIO = sys.stderr
    if in_boot_environment():
        with open("/proc/cmdline") as f:
            stream = console_streams(f.read(), sys.stderr)
    reporter = Reporter(None, console=settings.console, stream=stream)
    if settings.dump:  # disks: tests/golden/udev/; smart: tests/golden/smart/qemu-*.json
        dump_disks() if settings.dump == "disks" else checkup.dump_smart()
        if settings.job == "-":  # a diagnostic boot; beside a job, the job runs next
            power(settings.after or "poweroff", reporter)
            return 0
    ok, after = run(settings, reporter)
    power(after, reporter)
    return 0 if ok else 1


def run(settings: Settings, reporter: Reporter) -> tuple[bool, str]:
    """(succeeded, what to do after) — the job is reported done or failed here."""
    patience = settings.give_up_after or DEFAULT_GIVE_UP_AFTER
    # Without a job there is nothing to do here: reboot, and the appliance decides again
    # (no job → the local disk boots).
    after = settings.after or "reboot"
    try:
        if settings.mac:
            net.bring_up(settings.mac, reporter.log, give_up_after=patience)
        api = Api(
            settings.api or settings.url,
            settings.token,
            store_url=settings.url,
            pin=settings.pin if settings.api else None,
            give_up_after=patience,
            log=reporter.log,
        )
        job = api.job()
        if api.secure:
            reporter.log(f"client API over TLS to {api.host}:{api.port}, pinned certificate")
    except SlateError as exc:
        reporter.log(f"cannot start: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
        if isinstance(exc, PinMismatch):
            report_refusal(settings, exc, reporter.log)
        return False, after
    options: dict[str, Any] = dict(job.get("options") or {})
    if settings.give_up_after is None and options.get("give_up_after"):
        api.give_up_after = float(options["give_up_after"])
    after = settings.after or str(options.get("after") or "reboot")
    reporter.api = api
    reporter.start()
    try:
        ok = work(api, job, settings, reporter, after)
        reporter.stop()
        if after == "reboot" and (not ok or job.get("action") == "register"):
            # Stay where the console can reach the machine (docs/operations.md).
            hold = float(options.get("hold") or DEFAULT_HOLD)
            after = checkup.wait_for_power(api, reporter.log, hold) or after
        return ok, after
    finally:
        reporter.stop()
        api.close()


def report_refusal(settings: Settings, exc: SlateError, log: Callable[[str], None]) -> None:
    """The client channel presented another certificate than the pinned one: fail the
    job over plain HTTP (``slate.url``), once, so it fails loudly on the appliance too.
    Only the token (which every chunk request carries in clear anyway) and the reason go
    to a peer that was not verified; nothing is read from it."""
    try:
        Api(settings.url, settings.token, give_up_after=0, log=log).post_json(
            "/failed", {"reason": exc.message}, retry=False
        )
    except SlateError as again:
        log(f"could not report the failure: {again.message}")
    else:
        log(f"reported the failure to {settings.url}")


def work(
    api: Api, job: dict[str, Any], settings: Settings, reporter: Reporter, after: str = "none"
) -> bool:
    action = job.get("action")
    already_ended = False
    reporter.log(f"job {job.get('id')}: {action} {job.get('image') or ''}")
    try:
        if in_boot_environment():
            check_unpacked(Path(UNPACKED))
        facts = checkup.report_facts(api, reporter.log, real=in_boot_environment())
        if action == "register":
            checkup.register(api, facts, reporter.log)
            reporter.flush()
            api.post_json("/done", {"verified_bytes": 0})
            reporter.detach()
            reporter.log("done: hardware facts and disk health reported")
            return True
        if action == "restore":
            from bootimage.client.restore import restore  # each job imports only its path

            disks = settings.disk.split(",") if settings.disk else []
            verified = restore(
                api,
                job,
                reporter,
                disk_paths=disks,
                workers=settings.workers,
                boot_next=after == "reboot" and in_boot_environment(),
            )
            reporter.flush()
            api.post_json("/done", {"verified_bytes": verified})
            reporter.detach()
            reporter.log(f"done: {verified / 2**20:,.0f} MiB verified")
            return True
        if action == "capture":
            from bootimage.client.capture import capture

            answer = capture(api, job, reporter, disk_path=settings.disk, workers=settings.workers)
            reporter.flush()
            # Every chunk the new version names was hashed here and checked on arrival.
            api.post_json("/done", {"verified_bytes": int(answer.get("hashed_bytes", 0))})
            reporter.detach()
            reporter.log(f"done: captured {answer.get('image')}@{answer.get('version')}")
            return True
        raise SlateError(f"this client cannot run {action!r} jobs", hint="update Slate")
    except Unreachable as exc:
        reporter.log(f"failed: {exc.message}")
        return False  # nobody to tell: the appliance marks the job failed when it times out
    except SlateError as exc:
        reason = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        already_ended = isinstance(exc, (Conflict, checkup.RefusedByAppliance))
    except Exception as exc:  # a bug: report it rather than leave the job hanging
        reason = f"client error: {type(exc).__name__}: {exc}"
        reporter.log(traceback.format_exc())
    reporter.log(f"failed: {reason}")
    reporter.flush()
    if already_ended:
        return False  # the appliance failed the job itself (a refused disk or identity)
    try:
        api.post_json("/failed", {"reason": reason})
        reporter.detach()
    except SlateError as exc:
        reporter.log(f"could not report the failure: {exc.message}")
    return False


def check_unpacked(marker: Path) -> None:
    """Refuse to work in a boot environment the kernel did not unpack whole.

    Linux unpacks the initramfs into a RAM file system capped at half the memory; on a
    machine with too little, it stops at a file ("Initramfs unpacking failed: write
    error") and boots what it has, so later files (tools, Python modules) are missing
    and a restore would go wrong in ways far from the cause.  The builder puts
    :data:`UNPACKED` last: without it, the job fails here, before a byte is written."""
    if marker.exists():
        return
    total = _memory_mib()
    raise SlateError(
        "the boot environment did not unpack whole (the kernel said 'Initramfs unpacking"
        f" failed'): this machine has {total} MiB of memory, too little for it",
        hint="give the machine more memory: the kernel unpacks the boot environment into"
        " at most half of it (docs/bootimage.md, 'Memory')",
    )


def _memory_mib() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return 0


def dump_disks() -> None:
    """udev's facts about every block device and the records made of them, as JSON
    between markers on the console (how tests/golden/udev/ is captured)."""
    facts = [{"properties": p, "attributes": a} for p, a in disks.udev_facts()]
    records = [asdict(d) for d in disks.discover()]
    text = json.dumps({"facts": facts, "records": records}, indent=1, sort_keys=True)
    sys.stdout.write(f"\n{DUMP_BEGIN}\n{text}\n{DUMP_END}\n")
    sys.stdout.flush()


def in_boot_environment() -> bool:
    """True when running as the initramfs's payload (our /init, PID 1, is the parent)."""
    return os.getppid() == 1 and Path("/init").exists()


def power(after: str, reporter: Reporter) -> None:
    """Reboot or power off — only inside the boot environment (PID 1 is our /init)."""
    if after not in ("reboot", "poweroff"):
        return
    if not in_boot_environment():
        reporter.log(f"not in the boot environment: not doing {after!r}")
        return
    reporter.log(f"{after} in 5 s")
    os.sync()
    subprocess.run(["sleep", "5"], check=False)
    subprocess.run(["busybox", after, "-f"], check=False)
