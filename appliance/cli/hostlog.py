"""``slate host timeline NAME`` and ``slate host history NAME``: what a machine's last
boots did, and every job it ever had (``--csv`` for a spreadsheet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance import db
from appliance.cli.output import add_json_flag, human_bytes, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.machines import Inventory, history, timeline


def add_commands(sub: Any) -> None:
    """Called by :mod:`appliance.cli.host` (these are ``slate host`` subcommands)."""
    p = sub.add_parser("timeline", help="a machine's last events: DHCP, TFTP, boot, job")
    p.add_argument("host", metavar="NAME|MAC")
    p.add_argument("--limit", type=int, default=timeline.KEEP, help="newest N events")
    add_json_flag(p)
    p.set_defaults(func=cmd_timeline)

    p = sub.add_parser("history", help="every job a machine had: version, duration, bytes")
    p.add_argument("host", metavar="NAME|MAC")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV with a header line")
    out.add_argument("--json", action="store_true", help="print JSON for scripting")
    p.set_defaults(func=cmd_history)


def _host(args: argparse.Namespace) -> tuple[Any, str]:
    inv = Inventory(db.connect(Layout(resolve_home(args.home)).db))
    return inv.conn, inv.get_host(args.host).mac  # NotFound says how to list machines


def cmd_timeline(args: argparse.Namespace) -> int:
    conn, mac = _host(args)
    events = timeline.events(conn, mac, max(1, args.limit))
    if args.json:
        print_json(events)
        return 0
    if not events:
        print(f"no events for {args.host} yet: they start at its next network boot")
        return 0
    print_table([(e["at"], e["kind"], e["detail"]) for e in events], ["AT", "EVENT", "WHAT"])
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    conn, mac = _host(args)
    rows = history.host_history(conn, mac)
    if args.csv:
        sys.stdout.write(history.to_csv(rows))
        return 0
    if args.json:
        print_json(rows)
        return 0
    table = [
        (r["job"], r["action"], f"{r['image']}@{r['version']}" if r["image"] else "",
         r["finished_at"] or r["created_at"], _duration(r["duration_s"]),
         human_bytes(float(r["bytes"])), r["state"] + (f": {r['reason']}" if r["reason"] else ""))
        for r in rows
    ]  # fmt: skip
    print_table(table, ["JOB", "ACTION", "IMAGE", "ENDED", "TOOK", "BYTES", "RESULT"])
    return 0


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, s = divmod(seconds, 60)
    return f"{minutes}m{s:02d}s" if minutes else f"{s}s"
