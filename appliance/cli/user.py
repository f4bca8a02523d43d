"""``slate user …``: people who may use the web console and the JSON API.

There is no default password: the first admin is created here, at the server's shell
(``slate user add NAME --role admin``), which is also how a forgotten password is reset.
"""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
from typing import Any

from appliance import audit, db, users
from appliance.cli.output import add_group, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import UsageError


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "user", "people who may use the web console and API")

    p = sub.add_parser("add", help="create a user (prompts for the password)")
    p.add_argument("name")
    p.add_argument("--role", choices=users.ROLES, required=True)
    _password_flag(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    p.add_argument("name")
    _password_flag(p)
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser("role", help="change a user's role")
    p.add_argument("name")
    p.add_argument("role", choices=users.ROLES)
    p.set_defaults(func=cmd_role)

    p = sub.add_parser("list", help="list users")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rm", help="delete a user and their API tokens")
    p.add_argument("name")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("token", help="create an API token (printed once)")
    p.add_argument("name")
    p.add_argument("--label", default="", help="what the token is for")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("revoke", help="revoke every API token of a user")
    p.add_argument("name")
    p.set_defaults(func=cmd_revoke)


def _password_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )


def _conn(args: argparse.Namespace) -> sqlite3.Connection:
    return db.connect(Layout(resolve_home(args.home)).db)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError(
                "no password on standard input", hint="e.g. `printf '%s\\n' \"$PW\" | slate …`"
            )
        return password
    if not sys.stdin.isatty():
        raise UsageError(
            "cannot prompt for a password: standard input is not a terminal",
            hint="pass --password-stdin and write the password to standard input",
        )
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UsageError("the two passwords differ", hint="run the command again")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    password = _read_password(args)
    user = users.add(_conn(args), args.name, args.role, password, audit.cli_actor())
    print(f"user {user.name} ({user.role}) created")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    conn = _conn(args)
    users.get(conn, args.name)
    users.set_password(conn, args.name, _read_password(args), audit.cli_actor())
    print(f"password of {args.name} changed")
    return 0


def cmd_role(args: argparse.Namespace) -> int:
    users.set_role(_conn(args), args.name, args.role, audit.cli_actor())
    print(f"{args.name} is now {args.role}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    conn = _conn(args)
    rows = [(u.name, u.role, len(users.tokens(conn, u.name))) for u in users.list_users(conn)]
    if args.json:
        print_json([{"name": n, "role": r, "tokens": t} for n, r, t in rows])
    else:
        print_table(rows, ["NAME", "ROLE", "TOKENS"])
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    users.remove(_conn(args), args.name, audit.cli_actor())
    print(f"user {args.name} deleted")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    token = users.new_token(_conn(args), args.name, audit.cli_actor(), args.label)
    # Only the token on stdout, so `T=$(slate user token NAME)` works.
    print(token)
    print("store it now: it is not shown again", file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    n = users.revoke_tokens(_conn(args), args.name, audit.cli_actor())
    print(f"{n} token(s) of {args.name} revoked")
    return 0
