"""``slate room …``: groups of machines, and their standing restore rules."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.audit import cli_actor
from appliance.cli import hostfacts
from appliance.cli.host import add_transport_flag, inventory, rule_text
from appliance.cli.output import add_group, add_json_flag, print_json, print_table


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "room", "rooms: groups of machines")

    p = sub.add_parser("list", help="list rooms")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("add", help="add a room")
    p.add_argument("name")
    p.add_argument("--note", default="", help="free text, e.g. 'building B, 2nd floor'")
    p.add_argument("--auto-restore", metavar="IMAGE[@V]", help="restore at every network boot")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser(
        "status", help="every seat of a room: job, phase, progress, and its roomcast session"
    )
    p.add_argument("name")
    add_json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "set-auto-restore", help="restore IMAGE at every network boot of this room's machines"
    )
    p.add_argument("name")
    p.add_argument("image", metavar="IMAGE[@V]|none", help="'none' removes the rule")
    add_transport_flag(p)
    p.set_defaults(func=cmd_set_auto)

    p = sub.add_parser(
        "set-after",
        help="what this room's machines do when a restore is done, unless the job says"
        " (slate job restore --after)",
    )
    p.add_argument("name")
    p.add_argument("after", metavar="reboot|poweroff|none",
                   help="reboot into the restored system, shut down, or none (remove the"
                   " setting: jobs reboot)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_set_after)
    hostfacts.add_room_commands(sub)  # power


def cmd_list(args: argparse.Namespace) -> int:
    rooms = inventory(args).rooms()
    if args.json:
        print_json([r.to_dict() for r in rooms])
        return 0
    print_table(
        [(r.name, r.hosts, r.auto_restore or "", r.after or "", r.note) for r in rooms],
        ["NAME", "HOSTS", "AUTO-RESTORE", "WHEN DONE", "NOTE"],
    )
    return 0


def cmd_set_after(args: argparse.Namespace) -> int:
    room = inventory(args).set_room_after(args.name, args.after, actor=cli_actor())
    if args.json:
        print_json(room.to_dict())
        return 0
    if room.after:
        verb = {"reboot": "reboot", "poweroff": "power off"}[room.after]
        print(f"room {room.name}: its machines {verb} when a restore is done"
              " (a job started with --after does as it says)")  # fmt: skip
    else:
        print(f"room {room.name}: no 'when done' setting; restore jobs reboot unless started"
              " with --after poweroff")  # fmt: skip
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    room = inventory(args).add_room(
        args.name, actor=cli_actor(), note=args.note, auto_restore=args.auto_restore
    )
    print(f"added room {room.name}")
    return 0


def cmd_set_auto(args: argparse.Namespace) -> int:
    spec = None if args.image.lower() == "none" else args.image
    room = inventory(args).set_room_auto_restore(
        args.name, spec, actor=cli_actor(), transport=args.transport
    )
    print(f"room {room.name}: " + rule_text(spec, args.transport))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.cli.job import jobs
    from appliance.cli.output import human_bytes
    from appliance.config import resolve_home
    from appliance.roomstatus import room_status

    status = room_status(jobs(args), resolve_home(args.home), args.name)
    if args.json:
        print_json(status)
        return 0
    rows = []
    for s in status["seats"]:
        rc = s.get("roomcast") or {}
        how = ""
        if rc:
            mcast, http = human_bytes(rc["mcast_bytes"]), human_bytes(rc["http_bytes"])
            how = f"{rc['transport']} {mcast} + {http} by HTTP"
            if rc.get("catch") is not None:
                how += f" catch {rc['catch']:.0%}"
            if rc.get("forged"):
                how += f" forged {rc['forged']} dropped"
        pct = s.get("percent")
        rows.append(
            (
                s["host"],
                s["job"] or "",
                s.get("state") or "no job",
                s.get("phase") or "",
                "" if pct is None else f"{pct:.0f}%",
                f"{human_bytes(s['rate'])}/s" if s.get("rate") else "",
                f"{s['eta']:.0f} s" if s.get("eta") else "",
                how,
            )
        )
    print_table(rows, ["HOST", "JOB", "STATE", "PHASE", "DONE", "RATE", "ETA", "ROOMCAST"])
    t = status["totals"]
    print(
        f"{t['done']} done, {t['running']} running, {t['failed']} failed, "
        f"{t['waiting']} not yet booted, {t['idle']} without a job"
    )
    for sess in status["sessions"]:
        state = "ended" if sess.get("ended") else "live"
        print(
            f"roomcast session {sess['session']:08x} ({state}): {sess['image']}@{sess['version']}"
            f" on {sess['group']}:{sess['port']} at {sess['rate'] / 1e6:.0f} Mbit/s,"
            f" {human_bytes(sess['sent_bytes'])} sent, {sess['sent_chunks']} chunks +"
            f" {sess['sent_repairs']} repairs"
        )
        for seat in sess.get("seats", []):
            if seat["transport"] == "http" and seat["why"]:
                print(f"  {seat['name']}: HTTP only: {seat['why']}")
        if sess.get("tx_drops"):
            print(
                f"  warning: the appliance's interface dropped {sess['tx_drops']} packets on"
                " transmit (the sessions offer more than the link carries: lower"
                " --multicast-rate, or set --link-rate to the link's real speed)"
            )
        if sess.get("warning"):
            print(f"  warning: {sess['warning']}")
    return 0
