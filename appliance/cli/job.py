"""``slate job …``: restore and capture jobs, and how they went."""

from __future__ import annotations

import argparse
from typing import Any

from appliance import db
from appliance.audit import cli_actor
from appliance.cli.output import add_group, add_json_flag, human_bytes, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import UsageError
from appliance.jobs import Job, Jobs, parse_when

IGNORE_HELP = (
    "write even a disk whose SMART health fails or whose reallocated/pending sectors exceed"
    " the appliance's limits (the refusal is logged as a warning)"
)


def jobs(args: argparse.Namespace) -> Jobs:
    layout = Layout(resolve_home(args.home))
    return Jobs(db.connect(layout.db), layout)


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "job", "jobs: restore, capture, list, show, cancel, retry")

    p = sub.add_parser("restore", help="restore an image at the next network boot")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--host", metavar="NAME|MAC")
    who.add_argument("--room", metavar="ROOM", help="every machine of the room")
    p.add_argument("--image", required=True, metavar="NAME[@VERSION|@DATE|@-3d]",
                   help="NAME = newest promoted; @2026-11-20[T18:00] or @-3d: newest at or "
                   "before that time")  # fmt: skip
    p.add_argument("--at", metavar="TIME", help="not before: 18:30, 2026-11-25T18:30, +2h")
    p.add_argument("--after", choices=("reboot", "poweroff"), default=None,
                   help="when done: reboot into the restored system or shut down (default: the"
                   " room's setting, `slate room set-after`; reboot when it has none)")  # fmt: skip
    p.add_argument(
        "--transport",
        choices=("auto", "multicast", "unicast"),
        default="auto",
        help="roomcast (multicast) or HTTP; auto: multicast when 2+ machines restore the"
        " same version (default)",
    )
    p.add_argument("--ignore-disk-health", action="store_true", help=IGNORE_HELP)
    add_json_flag(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("capture", help="capture a new version of an image from a machine")
    p.add_argument("--host", required=True, metavar="NAME|MAC")
    p.add_argument("--image", required=True, metavar="NAME")
    p.add_argument("--note", default="", help="note stored with the new version")
    p.add_argument("--at", metavar="TIME", help="not before: 18:30, 2026-11-25T18:30, +2h")
    p.add_argument("--ignore-disk-health", action="store_true", help=IGNORE_HELP)
    add_json_flag(p)
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser(
        "register",
        help="at its next network boot the machine reports its hardware facts and disk"
        " health, writes nothing, then waits for a power request (slate host power)",
    )
    p.add_argument("--host", required=True, metavar="NAME|MAC")
    p.add_argument("--after", choices=("reboot", "poweroff"), default="reboot",
                   help="reboot (default: first wait up to 30 min for `slate host power`)"
                   " or power off at once")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("list", help="list active jobs (--all: also ended ones)")
    p.add_argument("--all", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one job with its log lines")
    p.add_argument("id", type=int)
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("cancel", help="cancel an active job")
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("retry", help="a new job doing what a failed/cancelled one should have")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_retry)


def _created(args: argparse.Namespace, created: list[Job]) -> int:
    if args.json:
        print_json([j.to_dict() for j in created])
        return 0
    for j in created:
        when = f", not before {j.not_before}" if j.not_before else ""
        what = f"{j.image}@{j.version}" if j.version else str(j.image)
        print(f"job {j.id}: {j.action} {what} on {j.host_name} ({j.host}){when}")
    print("the machine(s) will run it at their next network boot")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    js = jobs(args)
    when = parse_when(args.at) if args.at else None
    options: dict[str, Any] = {"transport": args.transport}
    if args.after:  # else the room's setting, or reboot (Jobs._room_after)
        options["after"] = args.after
    if args.ignore_disk_health:
        options["ignore_disk_health"] = True
    if args.room:
        created = js.restore_room(
            args.room, args.image, actor=cli_actor(), not_before=when, options=options
        )
    else:
        created = [
            js.restore(args.host, args.image, actor=cli_actor(), not_before=when, options=options)
        ]
    return _created(args, created)


def cmd_capture(args: argparse.Namespace) -> int:
    when = parse_when(args.at) if args.at else None
    options = {"ignore_disk_health": True} if args.ignore_disk_health else None
    job = jobs(args).capture(
        args.host, args.image, actor=cli_actor(), note=args.note, not_before=when, options=options
    )
    return _created(args, [job])


def cmd_register(args: argparse.Namespace) -> int:
    job = jobs(args).create("register", args.host, actor=cli_actor(), options={"after": args.after})
    return _created(args, [job])


def when_done(job: Job) -> str:
    """``poweroff (room r101's setting)``; "" for jobs that do not end by a power action."""
    if job.action != "restore":
        return ""
    after = str(job.options.get("after") or "reboot")
    room = job.options.get("after_room")
    return f"{after} (room {room}'s setting)" if room else after


def _progress(j: Job) -> str:
    if not j.bytes_total:
        return j.phase
    pct = 100 * j.bytes_done / j.bytes_total
    return f"{j.phase} {pct:.0f}% of {human_bytes(j.bytes_total)}"


def cmd_list(args: argparse.Namespace) -> int:
    found = jobs(args).list_jobs(include_ended=args.all)
    if args.json:
        print_json([j.to_dict() for j in found])
        return 0
    print_table(
        [
            (
                j.id,
                j.host_name,
                j.action,
                f"{j.image}@{j.version}" if j.version else (j.image or ""),
                j.state,
                _progress(j),
                j.not_before or "",
                j.created_at,
            )
            for j in found
        ],
        ["ID", "HOST", "ACTION", "IMAGE", "STATE", "PROGRESS", "NOT BEFORE", "CREATED"],
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    js = jobs(args)
    job = js.get(args.id)
    lines = js.log_lines(job.id)
    if args.json:
        print_json({**job.to_dict(), "log": lines})
        return 0
    fields = [
        ("job", job.id),
        ("host", f"{job.host_name} ({job.host})"),
        ("action", job.action),
        ("image", f"{job.image}@{job.version}" if job.version else job.image or ""),
        ("state", job.state + (f": {job.reason}" if job.reason else "")),
        ("progress", _progress(job)),
        ("created", f"{job.created_at} by {job.created_by}"),
        ("not before", job.not_before or ""),
        ("when done", when_done(job)),
        ("finished", job.finished_at or ""),
        ("verified", human_bytes(job.verified_bytes) if job.verified_bytes else ""),
        ("result", job.result_version or ""),
    ]
    for key, value in fields:
        if value != "":
            print(f"{key + ':':12} {value}")
    if lines:
        print("log:")
        for line in lines:
            print(f"  {line['at']}  {line['line']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    js = jobs(args)
    job = js.get(args.id)
    if not job.active:
        raise UsageError(f"job {job.id} has already ended ({job.state})", hint="nothing to cancel")
    job = js.cancel(args.id, actor=cli_actor(), reason=args.reason)
    print(f"job {job.id} cancelled")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    job = jobs(args).retry(args.id, actor=cli_actor())
    print(f"job {job.id} created (retry of job {args.id}); it runs at the next network boot")
    return 0
