"""``slate schedule …``: recurring captures and restores (run by ``slate serve``)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from appliance import db
from appliance.audit import cli_actor
from appliance.backups.schedules import Schedule, Schedules
from appliance.cli.output import add_group, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home


def schedules(args: argparse.Namespace) -> Schedules:
    layout = Layout(resolve_home(args.home))
    return Schedules(db.connect(layout.db), layout)


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "schedule", "recurring captures and restores")

    p = sub.add_parser("add", help="capture or restore at recurring times")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--host", metavar="NAME|MAC")
    who.add_argument("--room", metavar="ROOM", help="every machine of the room (restore)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--capture", metavar="IMAGE", help="a new version of IMAGE each time")
    what.add_argument("--restore", metavar="IMAGE[@V]", help="NAME, NAME@VERSION, NAME@-1d…")
    p.add_argument("--every", required=True, metavar="WHEN",
                   help='local time: "daily 02:00", "weekdays 07:30", "mon,thu 18:30", '
                   '"weekly sun 03:00"')  # fmt: skip
    p.add_argument("--wake", action="store_true", help="send Wake-on-LAN at the time")
    p.add_argument("--note", default="", help="note of each captured version")
    add_json_flag(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="schedules, their next run and last result")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    for verb, text in (
        ("rm", "remove a schedule"),
        ("pause", "stop creating jobs (until resume)"),
        ("resume", "create jobs again from the next occurrence on"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("id", type=int)
        p.set_defaults(func=cmd_change, verb=verb)


def _show(args: argparse.Namespace, found: list[Schedule]) -> int:
    now = datetime.now(UTC)
    if args.json:
        print_json([s.to_dict(now) for s in found])
        return 0
    print_table(
        [
            (
                s.id,
                s.target,
                f"{s.action} {s.image}",
                s.every + (" +wake" if s.wake else ""),
                "paused" if s.paused else (s.next_run(now) or ""),
                s.last_result,
            )
            for s in found
        ],
        ["ID", "TARGET", "WHAT", "EVERY (local)", "NEXT (UTC)", "LAST"],
    )
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    s = schedules(args).add(
        action="capture" if args.capture else "restore",
        image=args.capture or args.restore,
        every=args.every,
        host=args.host,
        room=args.room,
        wake=args.wake,
        note=args.note,
        actor=cli_actor(),
    )
    return _show(args, [s])


def cmd_list(args: argparse.Namespace) -> int:
    return _show(args, schedules(args).all())


def cmd_change(args: argparse.Namespace) -> int:
    ss = schedules(args)
    if args.verb == "rm":
        s = ss.remove(args.id, actor=cli_actor())
        print(f"schedule {s.id} removed ({s.action} {s.image}, {s.target})")
    else:
        s = ss.set_paused(args.id, args.verb == "pause", actor=cli_actor())
        print(f"schedule {s.id} " + ("paused" if s.paused else "resumed"))
    return 0
