"""``slate notify …``: webhooks and e-mail on job failed, job done, room done and a
disk refused for its health.  ``slate serve`` delivers them from its own thread."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Any

from appliance import audit, db
from appliance.cli.output import add_group, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.db import transaction
from appliance.errors import UsageError
from appliance.notify import outbox
from appliance.notify.events import EVENTS, Event
from appliance.timestamps import utc_now


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "notify", "webhooks and e-mail when jobs and rooms end")
    events_help = f"comma-separated, of {','.join(EVENTS)} (default: all)"

    p = sub.add_parser("add-webhook", help="POST signed JSON to URL on events")
    p.add_argument("url")
    p.add_argument("--secret", required=True, help="HMAC-SHA256 key of X-Slate-Signature")
    p.add_argument("--events", default="", help=events_help)
    add_json_flag(p)
    p.set_defaults(func=cmd_add_webhook)

    p = sub.add_parser("add-email", help="send a mail on events")
    p.add_argument("--to", required=True, help="recipient")
    p.add_argument("--smtp", required=True, metavar="HOST:PORT")
    p.add_argument("--user", default="", help="SMTP login")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the SMTP password from stdin"
    )
    p.add_argument("--starttls", action="store_true", help="STARTTLS before logging in")
    p.add_argument("--events", default="", help=events_help)
    add_json_flag(p)
    p.set_defaults(func=cmd_add_email)

    p = sub.add_parser("list", help="list notification targets")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rm", help="remove a notification target")
    p.add_argument("id", type=int)
    add_json_flag(p)
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("test", help="queue a test event for one target")
    p.add_argument("id", type=int)
    add_json_flag(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("log", help="the delivery log, newest first")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(func=cmd_log)


def _conn(args: argparse.Namespace) -> sqlite3.Connection:
    return db.connect(Layout(resolve_home(args.home)).db)


def cmd_add_webhook(args: argparse.Namespace) -> int:
    t = outbox.add_webhook(_conn(args), args.url, args.secret, args.events, audit.cli_actor())
    if args.json:
        print_json(t.public())
    else:
        print(f"webhook {t.id} → {t.address} on {','.join(t.events)}")
    return 0


def cmd_add_email(args: argparse.Namespace) -> int:
    password = ""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("no password on standard input", hint="printf '%s\\n' \"$PW\" | …")
    t = outbox.add_email(
        _conn(args),
        args.to,
        args.smtp,
        args.events,
        audit.cli_actor(),
        user=args.user,
        password=password,
        starttls=args.starttls,
    )
    if args.json:
        print_json(t.public())
    else:
        print(f"e-mail {t.id} → {t.address} via {t.smtp} on {','.join(t.events)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = [t.public() for t in outbox.targets(_conn(args))]
    if args.json:
        print_json(rows)
    else:
        table = [(r["id"], r["kind"], r["address"], ",".join(r["events"])) for r in rows]
        print_table(table, ["ID", "KIND", "TO", "EVENTS"])
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    outbox.remove(_conn(args), args.id, audit.cli_actor())
    if args.json:
        print_json({"removed": args.id})
    else:
        print(f"notification target {args.id} removed")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    conn = _conn(args)
    target = outbox.get(conn, args.id)
    event = Event("done", "test", utc_now(), {"test": True, "by": audit.cli_actor()})
    with transaction(conn):
        queued = outbox.enqueue(conn, event, only=target.id)
    if args.json:
        print_json({"target": target.id, "queued": queued})
    else:
        print(f"test event queued for {target.address}; `slate serve` delivers it"
              " (`slate notify log`)")  # fmt: skip
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    rows = outbox.delivery_log(_conn(args), args.limit)
    if args.json:
        print_json(rows)
    else:
        table = [
            (r["at"], r["target"], r["event"], r["subject"], r["attempt"],
             ("sent: " if r["ok"] else "failed: ") + r["detail"])
            for r in rows
        ]  # fmt: skip
        print_table(table, ["AT", "TARGET", "EVENT", "ABOUT", "TRY", "RESULT"])
    return 0
