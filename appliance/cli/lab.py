"""``slate lab …``: a private PXE lab on this machine (namespaces + QEMU).

``build-image`` builds (or finds cached) the sample master image; ``up`` brings up an
appliance and PXE machines inside network namespaces and leaves them running, with the
web console on the host's loopback and a console login (user ``lab``, made once, shown
again by ``status``); ``status`` shows what runs; ``down`` stops exactly what ``up``
started (PIDs and names from the state file in the data directory) and removes the hosts
it registered — no other host (``appliance.lab.owned``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.cli.output import add_group, add_json_flag, human_bytes, print_json, print_table
from appliance.config import resolve_home


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "lab", "a private PXE lab on this machine (QEMU)")

    p = sub.add_parser("build-image", help="build (or find cached) the sample master image")
    p.add_argument("--marker", default=None, help="word the image prints when it boots")
    p.add_argument("--cache", type=Path, help="cache dir (default $SLATE_TEST_CACHE)")
    add_json_flag(p)
    p.set_defaults(func=cmd_build_image)

    p = sub.add_parser("up", help="start a lab (appliance + PXE machines) and leave it running")
    p.add_argument("--bios", type=int, default=1, metavar="N", help="BIOS machines (1)")
    p.add_argument("--uefi", type=int, default=1, metavar="N", help="UEFI machines (1)")
    p.add_argument("--port", type=int, default=8080, help="console port on 127.0.0.1 (8080)")
    p.add_argument("--accel", default="tcg", help="QEMU accelerator: tcg or kvm (tcg)")
    p.add_argument("--memory", type=int, default=512, help="MiB per machine (512)")
    p.add_argument(
        "--no-image", action="store_true", help="do not build and import the sample image"
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("power-on", help="start (again) a lab machine that is off")
    p.add_argument("names", nargs="*", help="machine names (default: every machine that is off)")
    p.set_defaults(func=cmd_power_on)

    p = sub.add_parser("status", help="show the running lab")
    add_json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("down", help="stop everything `slate lab up` started")
    p.set_defaults(func=cmd_down)


def cmd_build_image(args: argparse.Namespace) -> int:
    from appliance.lab.masterimage import MasterImageSpec, build_master_image

    spec = MasterImageSpec(marker=args.marker) if args.marker else MasterImageSpec()
    image = build_master_image(spec, args.cache, log=lambda m: print(f"lab: {m}", file=sys.stderr))
    if args.json:
        print_json(image.info())
    else:
        print(image.path)
        print(
            f"{human_bytes(image.size)} disk, kernel {image.kernel_version}, boots to "
            f"'{image.marker_line('bios|uefi')}'",
            file=sys.stderr,
        )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from appliance.lab import steps

    home = resolve_home(args.home)
    state = steps.lab_up(
        home,
        bios=args.bios,
        uefi=args.uefi,
        port=args.port,
        accel=args.accel,
        memory=args.memory,
        with_image=not args.no_image,
        log=lambda m: print(f"lab: {m}", file=sys.stderr),
    )
    if args.json:
        print_json(state)
        return 0
    print(f"lab {state['prefix']} is up; web console: {state['console']}")
    _print_certificate(state)
    _print_login(state)
    _print_machines(state)
    print("stop it with: slate lab down")
    return 0


def cmd_power_on(args: argparse.Namespace) -> int:
    from appliance.lab.harness import power_on

    for line in power_on(resolve_home(args.home), args.names):
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.lab.harness import status_from_state

    state = status_from_state(resolve_home(args.home))
    if args.json:
        print_json(state)
        return 0
    print(f"lab {state['prefix']}; web console: {state['console']}")
    _print_certificate(state)
    _print_login(state)
    rows = [(p["role"], p["pid"], "running" if p["alive"] else "stopped") for p in state["procs"]]
    print_table(rows, ["process", "pid", "state"])
    _print_machines(state)
    return 0


def _print_certificate(state: dict[str, Any]) -> None:
    if state.get("console_sha256"):
        print(f"console certificate (self-signed) SHA-256: {state['console_sha256']}")


def _print_login(state: dict[str, Any]) -> None:
    from appliance.lab.owned import describe_login

    line = describe_login(state.get("login"))
    if line:
        print(f"console login: {line}")


def _print_machines(state: dict[str, Any]) -> None:
    rows = [(m["name"], m["firmware"], m["mac"], m["serial"], m["disk"]) for m in state["machines"]]
    if rows:
        print_table(rows, ["machine", "firmware", "mac", "disk serial", "disk file"])


def cmd_down(args: argparse.Namespace) -> int:
    from appliance.lab.steps import lab_down

    for line in lab_down(resolve_home(args.home)):
        print(line)
    print("lab is down")
    return 0
