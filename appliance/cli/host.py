"""``slate host …``: the machines Slate knows, and those it has only seen booting."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance import db
from appliance.audit import cli_actor
from appliance.cli import hostfacts, hostlog
from appliance.cli.output import add_group, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import UsageError
from appliance.machines import RULE_TRANSPORTS, Inventory
from appliance.machines import facts as machine_facts


def inventory(args: argparse.Namespace) -> Inventory:
    layout = Layout(resolve_home(args.home))
    return Inventory(db.connect(layout.db))


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "host", "machines: add, set, list, remove, import, seen")

    p = sub.add_parser("add", help="register a machine by its MAC address")
    p.add_argument("mac", help="MAC address (aa:bb:cc:dd:ee:ff, AA-BB-…, aabb.ccdd.eeff)")
    p.add_argument("--name", required=True, help="host name, e.g. pc-01")
    p.add_argument("--room", help="room (created if new)")
    p.add_argument("--ip", help="fixed address (full DHCP mode)")
    p.add_argument("--disk-hint", default="", help="target disk: serial=…, wwn=…, size=…")
    p.add_argument("--auto-restore", metavar="IMAGE[@V]", help="restore at every network boot")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("set", help="change a machine: name, room, fixed address, disk hint")
    p.add_argument("host", metavar="NAME|MAC")
    p.add_argument("--name", help="new host name")
    p.add_argument("--room", help="move to this room (created if new); '' for none")
    p.add_argument("--ip", help="fixed address (full DHCP mode); '' for none")
    p.add_argument("--disk-hint", help="target disk: serial=…, wwn=…, size=…; '' for none")
    add_json_flag(p)
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("list", help="list registered machines")
    p.add_argument("--room", help="only this room")
    p.add_argument("--search", metavar="TEXT",
                   help="only machines whose name, MAC, room or hardware facts (serial,"
                   " SMBIOS UUID, model, CPU…) contain TEXT")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rm", help="remove a machine (by name or MAC)")
    p.add_argument("host", metavar="NAME|MAC")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("import-csv", help="add machines from a CSV: mac,name,room[,ip]")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("seen", help="machines that network-booted but are not registered")
    p.add_argument("--all", action="store_true", help="include registered machines")
    add_json_flag(p)
    p.set_defaults(func=cmd_seen)

    p = sub.add_parser("set-auto-restore", help="restore IMAGE at every boot of this host")
    p.add_argument("host", metavar="NAME|MAC")
    p.add_argument("image", metavar="IMAGE[@V]|none", help="'none' removes the rule")
    add_transport_flag(p)
    p.set_defaults(func=cmd_set_auto)
    hostfacts.add_commands(sub)  # facts, power, forget-uuid
    hostlog.add_commands(sub)  # timeline, history


def cmd_add(args: argparse.Namespace) -> int:
    host = inventory(args).add_host(
        args.mac,
        args.name,
        actor=cli_actor(),
        room=args.room,
        ip=args.ip,
        disk_hint=args.disk_hint,
        auto_restore=args.auto_restore,
    )
    print(f"added host {host.name} ({host.mac})" + (f" in room {host.room}" if host.room else ""))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    if all(v is None for v in (args.name, args.room, args.ip, args.disk_hint)):
        raise UsageError(
            "nothing to change",
            hint='give --name, --room, --ip or --disk-hint ("" clears a room, ip or hint)',
        )
    host = inventory(args).update_host(
        args.host,
        actor=cli_actor(),
        name=args.name,
        room=args.room,
        ip=args.ip,
        disk_hint=args.disk_hint,
    )
    if args.json:
        print_json(host.to_dict())
    else:
        print(
            f"host {host.name} ({host.mac}): room {host.room or '-'}, ip {host.ip or '-'}, "
            f"disk hint {host.disk_hint or '-'}"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    inv = inventory(args)
    hosts = inv.hosts(args.room)
    if args.search:
        hosts = machine_facts.search_hosts(inv.conn, hosts, args.search)
    if args.json:
        print_json([h.to_dict() for h in hosts])
        return 0
    print_table(
        [(h.name, h.mac, h.room, h.ip, h.firmware, h.auto_restore) for h in hosts],
        ["NAME", "MAC", "ROOM", "IP", "FIRMWARE", "AUTO-RESTORE"],
    )
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    host = inventory(args).remove_host(args.host, actor=cli_actor())
    print(f"removed host {host.name} ({host.mac})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}", hint="check the path") from exc
    added = inventory(args).import_csv(text, actor=cli_actor())
    print(f"imported {len(added)} hosts from {args.file}")
    return 0


def cmd_seen(args: argparse.Namespace) -> int:
    seen = inventory(args).seen(include_known=args.all)
    if args.json:
        print_json([s.to_dict() for s in seen])
        return 0
    print_table(
        [(s.mac, s.firmware, s.ip, s.first_seen, s.last_seen, s.boots) for s in seen],
        ["MAC", "FIRMWARE", "IP", "FIRST SEEN", "LAST SEEN", "BOOTS"],
    )
    return 0


def add_transport_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--transport",
        choices=RULE_TRANSPORTS,
        default="auto",
        help="how the rule's restores get their chunks: auto (multicast when two or more"
        " machines restore the same version; default), multicast, unicast (HTTP)",
    )


def rule_text(spec: str | None, transport: str) -> str:
    if not spec:
        return "no standing rule"
    how = "" if transport == "auto" else f", by {transport}"
    return f"restore {spec} at every boot{how}"


def cmd_set_auto(args: argparse.Namespace) -> int:
    spec = None if args.image.lower() == "none" else args.image
    host = inventory(args).set_host_auto_restore(
        args.host, spec, actor=cli_actor(), transport=args.transport
    )
    print(f"host {host.name}: " + rule_text(spec, args.transport))
    return 0
