"""``slate hook …`` (post-restore scripts) and ``slate keep …`` (kept partitions).

Both change what every later restore of the image, room or host does, so in the console
they are the admin role's (permission ``hook.edit``; the JSON API has no hook calls); at
the server's shell, whoever may run ``slate`` on the data directory is its administrator,
as for ``slate user``.  docs/hooks.md is the reference."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

from appliance import db, hooks
from appliance.audit import cli_actor
from appliance.cli.output import add_group, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import UsageError


def _conn(args: argparse.Namespace) -> sqlite3.Connection:
    return db.connect(Layout(resolve_home(args.home)).db)


def _scope(p: argparse.ArgumentParser, scopes: tuple[str, ...]) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    for scope in scopes:
        what = {"image": "NAME", "room": "ROOM", "host": "MAC|NAME"}[scope]
        g.add_argument(f"--{scope}", metavar=what, help=f"for this {scope}")


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "hook", "post-restore scripts per image, room or host")
    p = sub.add_parser("add", help="run FILE after every restore of an image, room or host")
    _scope(p, hooks.SCOPES)
    p.add_argument("file", type=Path, metavar="FILE", help="the script (starts with #!)")
    p.add_argument("--name", help="its name in lists and logs (default: the file's name)")
    p.add_argument("--timeout", type=int, default=hooks.DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"kill it and fail the job after this long (default "
                   f"{hooks.DEFAULT_TIMEOUT})")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list hooks in the order a restore runs them")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="print a hook's script")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("rm", help="remove a hook")
    p.add_argument("id", type=int)
    add_json_flag(p)
    p.set_defaults(func=cmd_rm)

    _, sub = add_group(subparsers, "keep", "kept partitions: data that survives every restore")
    p = sub.add_parser("add", help="keep partition N (of disk 0) on restores of an image/room")
    _scope(p, hooks.KEEP_SCOPES)
    p.add_argument("--partition", type=int, required=True, metavar="N")
    add_json_flag(p)
    p.set_defaults(func=cmd_keep_add)

    p = sub.add_parser("list", help="list kept-partition rules")
    add_json_flag(p)
    p.set_defaults(func=cmd_keep_list)

    p = sub.add_parser("rm", help="remove a kept-partition rule")
    p.add_argument("id", type=int)
    add_json_flag(p)
    p.set_defaults(func=cmd_keep_rm)


def _which(args: argparse.Namespace, scopes: tuple[str, ...]) -> tuple[str, str]:
    for scope in scopes:
        value = getattr(args, scope, None)
        if value:
            return scope, str(value)
    raise UsageError("say whose it is", hint="give --" + ", --".join(scopes))


def cmd_add(args: argparse.Namespace) -> int:
    scope, target = _which(args, hooks.SCOPES)
    try:
        script = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}",
                         hint="give the path of the script file") from exc  # fmt: skip
    hook = hooks.add_hook(_conn(args), scope, target, args.name or args.file.name, script,
                          timeout=args.timeout, actor=cli_actor())  # fmt: skip
    if args.json:
        print_json(hook.to_dict())
    else:
        print(f"added hook {hook.id}: {hook.name} for {hook.scope} {hook.target} "
              f"({hook.size} bytes, timeout {hook.timeout} s)")  # fmt: skip
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    order = {s: i for i, s in enumerate(hooks.SCOPES)}
    found = sorted(hooks.hooks(_conn(args)), key=lambda h: (order[h.scope], h.target, h.id))
    if args.json:
        print_json([h.to_dict() for h in found])
        return 0
    print_table(
        [(h.id, h.scope, h.target, h.name, h.size, h.timeout, h.created_by) for h in found],
        ["ID", "SCOPE", "FOR", "NAME", "BYTES", "TIMEOUT", "ADDED BY"],
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import sys

    sys.stdout.buffer.write(hooks.script(_conn(args), args.id))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    hook = hooks.remove_hook(_conn(args), args.id, actor=cli_actor())
    if args.json:
        print_json(hook.to_dict())
    else:
        print(f"removed hook {hook.id}: {hook.name} of {hook.scope} {hook.target}")
    return 0


def cmd_keep_add(args: argparse.Namespace) -> int:
    scope, target = _which(args, hooks.KEEP_SCOPES)
    rule = hooks.add_keep(_conn(args), scope, target, args.partition, actor=cli_actor())
    if args.json:
        print_json(rule.to_dict())
    else:
        print(f"rule {rule.id}: restores of {rule.scope} {rule.target} keep partition "
              f"{rule.partition} when the disk's layout matches the image's")  # fmt: skip
    return 0


def cmd_keep_list(args: argparse.Namespace) -> int:
    found = hooks.keep_rules(_conn(args))
    if args.json:
        print_json([r.to_dict() for r in found])
        return 0
    print_table(
        [(r.id, r.scope, r.target, r.partition, r.created_by) for r in found],
        ["ID", "SCOPE", "FOR", "PARTITION", "ADDED BY"],
    )
    return 0


def cmd_keep_rm(args: argparse.Namespace) -> int:
    rule = hooks.remove_keep(_conn(args), args.id, actor=cli_actor())
    if args.json:
        print_json(rule.to_dict())
    else:
        print(f"removed rule {rule.id}: {rule.scope} {rule.target} keeps partition "
              f"{rule.partition} no more")  # fmt: skip
    return 0
