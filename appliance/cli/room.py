"""``slate room …``: groups of machines, and their standing restore rules."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.audit import cli_actor
from appliance.cli.host import inventory
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
        "set-auto-restore", help="restore IMAGE at every network boot of this room's machines"
    )
    p.add_argument("name")
    p.add_argument("image", metavar="IMAGE[@V]|none", help="'none' removes the rule")
    p.set_defaults(func=cmd_set_auto)


def cmd_list(args: argparse.Namespace) -> int:
    rooms = inventory(args).rooms()
    if args.json:
        print_json([r.to_dict() for r in rooms])
        return 0
    print_table(
        [(r.name, r.hosts, r.auto_restore or "", r.note) for r in rooms],
        ["NAME", "HOSTS", "AUTO-RESTORE", "NOTE"],
    )
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    room = inventory(args).add_room(
        args.name, actor=cli_actor(), note=args.note, auto_restore=args.auto_restore
    )
    print(f"added room {room.name}")
    return 0


def cmd_set_auto(args: argparse.Namespace) -> int:
    spec = None if args.image.lower() == "none" else args.image
    room = inventory(args).set_room_auto_restore(args.name, spec, actor=cli_actor())
    print(f"room {room.name}: " + (f"restore {spec} at every boot" if spec else "no standing rule"))
    return 0
