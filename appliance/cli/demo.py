"""``slate demo``: Slate's main job, end to end, on this machine.

Builds what it needs (the sample Debian master image and the boot environment, both
cached), imports the image, brings up a private lab (an appliance and two PXE machines,
one BIOS and one UEFI, in network namespaces), restores the image onto both while
showing progress, and shows that both boot the restored system.  The web console is
reachable from this host at https://127.0.0.1:PORT/ while all boot traffic stays inside
the lab.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from appliance.cli.output import human_bytes, print_table
from appliance.config import Layout, resolve_home

ROOM = "demo"
# Fixed MACs: a second run finds the same hosts in the inventory.
MACHINES = (("demo-bios", "bios", "52:54:00:5e:00:01"), ("demo-uefi", "uefi", "52:54:00:5e:00:02"))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="restore the sample image onto two lab machines (BIOS + UEFI) and boot them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8080, help="web console port on 127.0.0.1")
    p.add_argument("--accel", default="tcg", help="QEMU accelerator: tcg (default) or kvm")
    p.add_argument("--memory", type=int, default=512, help="MiB per lab machine (512)")
    p.add_argument(
        "--keep", action="store_true", help="leave the lab running (stop it: slate lab down)"
    )
    p.set_defaults(func=cmd_demo)


def say(msg: str) -> None:
    print(msg, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from appliance.lab import harness, steps
    from appliance.lab.masterimage import build_master_image

    home = resolve_home(args.home)
    t0 = time.monotonic()
    steps.refuse_second_lab(home)
    say("slate demo: 1/5 the sample master image (Debian, BIOS + UEFI boot; cached)")
    image = build_master_image(log=lambda m: say(f"    {m}"))
    say(f"    {image.path} ({human_bytes(image.size)} disk)")
    say("slate demo: 2/5 the boot environment (kernel + initramfs with the restore client)")
    steps.ensure_bootenv(home, lambda m: say(f"    {m}"))
    say("slate demo: 3/5 the image library")
    version = steps.ensure_sample_image(home, image, lambda m: say(f"    {m}"))
    say(f"    image {steps.SAMPLE_IMAGE}, version {version}")
    port = _free_port(args.port)
    say("slate demo: 4/5 the lab: appliance + 2 PXE machines in private network namespaces")
    run = harness.LabRun(home, Layout(home).demo_work, accel=args.accel, console_port=port)
    run.start(detach=args.keep)
    try:
        say(f"    web console: https://127.0.0.1:{port}/  {_console_login(home)}")
        say(f"    its certificate (self-signed) SHA-256: {run.state()['console_sha256']}")
        figures = _restore_both(run, home, image, version, args.memory)
        _summary(figures, time.monotonic() - t0)
        if args.keep:
            harness.save_state(home, run.state())
            say(f"lab left running; web console https://127.0.0.1:{port}/ ; stop: slate lab down")
            run = None  # type: ignore[assignment]
    finally:
        if run is not None:
            run.stop()
    return 0


def _restore_both(run: Any, home: Path, image: Any, version: str, memory: int) -> list[dict]:
    from appliance.lab import steps

    machines = []
    for name, fw, mac in MACHINES:
        machines.append(run.add_machine(name, fw, disk_size=image.size, mac=mac, memory=memory))
    steps.register(home, machines, ROOM)
    _cancel_leftovers(home, [m.name for m in machines])
    ids = steps.restore(home, [m.name for m in machines], f"{steps.SAMPLE_IMAGE}@{version}")
    say("slate demo: 5/5 restoring onto both machines (PXE boot → restore → reboot → boot)")
    watch = steps.Watch()
    for m in machines:
        run.start_machine(m.name)
    printer = _ProgressPrinter()
    steps.wait_jobs(home, ids, machines, 1200, watch=watch, on_update=printer)
    booted = steps.wait_booted(machines, lambda m: image.marker_line(m.firmware), 300)
    out = []
    for m, jid in zip(machines, ids, strict=True):
        line = image.marker_line(m.firmware)
        say(f"    {m.name}: booted the restored system: {line!r}")
        split = steps.transfer_split(home, jid)
        out.append({"name": m.name, "firmware": m.firmware, **watch.figures(jid),
                    "booted_after_restore": booted[m.name], "marker": line,
                    "multicast_mib": split[0] if split else None,
                    "http_mib": split[1] if split else None})  # fmt: skip
    return out


def _cancel_leftovers(home: Path, names: list[str]) -> None:
    """Jobs left active by an interrupted earlier demo would block new ones."""
    from appliance.jobs import Jobs
    from appliance.lab import steps

    conn = steps.connect(home)
    try:
        jobs = Jobs(conn, steps.Layout(home))
        for name in names:
            for j in jobs.list_jobs(host=name):
                jobs.cancel(j.id, actor="demo", reason="a new demo run started")
    finally:
        conn.close()


class _ProgressPrinter:
    """One line per machine whenever its state or phase changes, or every 5 s."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[str, str, float]] = {}

    def __call__(self, j: Any) -> None:
        now = time.monotonic()
        prev = self.last.get(j.id)
        if prev and prev[:2] == (j.state, j.phase) and now - prev[2] < 5:
            return
        self.last[j.id] = (j.state, j.phase, now)
        pct = f"{100 * j.bytes_done / j.bytes_total:5.1f}%" if j.bytes_total else "     "
        rate = f"{human_bytes(j.rate)}/s" if j.rate else ""
        size = f"{human_bytes(j.bytes_done)}/{human_bytes(j.bytes_total)}" if j.bytes_total else ""
        say(f"    {j.host_name:<10} {j.state:<9} {j.phase or '':<10} {pct} {size} {rate}".rstrip())


def _summary(figures: list[dict], total: float) -> None:
    def sec(v: float | None) -> str:
        return f"{v:.0f} s" if v is not None else "?"

    def mib(v: int | None) -> str:
        return "?" if v is None else f"{v} MiB"

    rows = [
        (f["name"], f["firmware"], sec(f["to_restore_start"]), sec(f["restore_seconds"]),
         f"{human_bytes(f['rate'])}/s" if f["rate"] else "?", mib(f.get("multicast_mib")),
         mib(f.get("http_mib")), sec(f["booted_after_restore"]))
        for f in figures
    ]  # fmt: skip
    say("")
    print_table(rows, ["machine", "firmware", "power-on→restore", "restore", "rate",
                       "by multicast", "by HTTP", "→ booted"])  # fmt: skip
    say(f"\nslate demo: done in {total:.0f} s — both machines booted the restored system.")


def _free_port(wanted: int) -> int:
    for port in (wanted, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise AssertionError("unreachable")


def _console_login(home: Path) -> str:
    """A console user for the demo (created once; the password is printed once)."""
    from appliance.lab import steps

    listed = steps.slate(home, "user", "list", "--json", check=False)
    if listed.returncode != 0:
        return ""
    if '"demo"' in listed.stdout:
        return "(user: demo; password as printed by the first demo run)"
    password = secrets.token_urlsafe(9)
    proc = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "--home", str(home), "user", "add", "demo",
         "--role", "admin", "--password-stdin"],
        input=password + "\n", capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        return ""
    return f"(user: demo, password: {password})"
