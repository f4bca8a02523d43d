"""``slate host facts|power|forget-uuid``: a machine's hardware facts and disk health,
power requests for a machine waiting in the boot environment, and its SMBIOS identity."""

from __future__ import annotations

import argparse
from typing import Any

from appliance import db
from appliance.audit import cli_actor
from appliance.cli.output import add_json_flag, human_bytes, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.machines import Inventory
from appliance.machines import facts as machine_facts
from appliance.machines import power as machine_power


def _conn(args: argparse.Namespace) -> Any:
    return db.connect(Layout(resolve_home(args.home)).db)


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "facts", help="hardware facts a machine reported (register job, restore, capture)"
    )
    p.add_argument("host", metavar="NAME|MAC")
    add_json_flag(p)
    p.set_defaults(func=cmd_facts)

    p = sub.add_parser(
        "power",
        help="reboot or power off a machine waiting in Slate's boot environment"
        " (after a register job, a refused disk or a failed job)",
    )
    p.add_argument("host", metavar="NAME|MAC")
    p.add_argument("command", choices=machine_power.POWER_COMMANDS)
    add_json_flag(p)
    p.set_defaults(func=cmd_power)

    p = sub.add_parser(
        "forget-uuid",
        help="unpin a machine's SMBIOS UUID (its mainboard was replaced): the next facts pin it",
    )
    p.add_argument("host", metavar="NAME|MAC")
    add_json_flag(p)
    p.set_defaults(func=cmd_forget_uuid)


def add_room_commands(sub: Any) -> None:
    p = sub.add_parser(
        "power",
        help="reboot or power off every machine of the room waiting in Slate's boot environment",
    )
    p.add_argument("name", metavar="ROOM")
    p.add_argument("command", choices=machine_power.POWER_COMMANDS)
    add_json_flag(p)
    p.set_defaults(func=cmd_room_power)


def cmd_room_power(args: argparse.Namespace) -> int:
    result = machine_power.request_power_room(
        _conn(args), args.name, args.command, actor=cli_actor()
    )
    if args.json:
        print_json(result)
        return 0
    for r in result["requested"]:
        print(f"{r['host']}: {args.command} requested (job {r['job']})")
    if result["not_waiting"]:
        print(
            "not waiting in the boot environment (left alone): " + ", ".join(result["not_waiting"])
        )
    return 0


def cmd_facts(args: argparse.Namespace) -> int:
    conn = _conn(args)
    host = Inventory(conn).get_host(args.host)
    found = machine_facts.facts_of(conn, host.mac)
    health = machine_facts.health_of_host(conn, host.mac)
    if args.json:
        print_json({"host": host.name, "mac": host.mac, "facts": found, "disk_health": health})
        return 0
    if found is None:
        print(f"{host.name} has reported no hardware facts yet")
        print(f"hint: `slate job register --host {host.name}`, then boot it from the network")
        return 0
    f = found["facts"]
    cpu = f.get("cpu") or {}
    print(f"{host.name} ({host.mac}), reported {found['reported_at']} by job {found['job']}")
    print(f"  system  {f.get('system_vendor', '')} {f.get('system_product', '')}".rstrip())
    print(f"  serial  {found['serial'] or '-'}   SMBIOS UUID {found['uuid'] or '-'}")
    print(f"  board   {f.get('board_vendor', '')} {f.get('board_product', '')}"
          f" serial {f.get('board_serial') or '-'}")  # fmt: skip
    print(f"  CPU     {cpu.get('model') or '?'} ({cpu.get('threads') or '?'} threads)")
    print(f"  memory  {human_bytes(int(f.get('memory_bytes') or 0))}")
    print_table(
        [
            (
                d.get("path"),
                d.get("model"),
                d.get("serial"),
                human_bytes(int(d.get("size") or 0)),
                "yes" if d.get("rotational") else "no",
            )
            for d in f.get("disks") or []
        ],
        ["DISK", "MODEL", "SERIAL", "SIZE", "ROTATIONAL"],
    )
    print_table(
        [
            (n.get("name"), n.get("mac"), n.get("driver"), n.get("speed_mbit"))
            for n in f.get("nics") or []
        ],
        ["NIC", "MAC", "DRIVER", "MBIT/S"],
    )
    if health:
        print_table(
            [(h["path"], h["status"], "; ".join(h["facts"].get("reasons") or [])) for h in health],
            [f"DISK HEALTH (job {health[0]['job']})", "STATUS", "WHY"],
        )
    return 0


def cmd_power(args: argparse.Namespace) -> int:
    conn = _conn(args)
    host = Inventory(conn).get_host(args.host)
    job = machine_power.request_power(conn, host.name, args.command, actor=cli_actor())
    if args.json:
        print_json({"host": host.name, "job": job, "command": args.command})
        return 0
    print(f"{host.name}: {args.command} requested; its client (job {job}) takes it within"
          f" {machine_power.POLL_EVERY} s")  # fmt: skip
    return 0


def cmd_forget_uuid(args: argparse.Namespace) -> int:
    conn = _conn(args)
    old = machine_facts.forget_uuid(conn, args.host, actor=cli_actor())
    if args.json:
        print_json({"host": args.host, "forgot_uuid": old})
        return 0
    print(f"forgot SMBIOS UUID {old or '(none pinned)'}: the next facts reported pin it again")
    return 0
