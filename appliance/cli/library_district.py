"""``slate library status|roster|prune``: the district view and retention in the bucket
(docs/district.md, "The district view" and "Retention in the bucket").

``slate library roster --add north=s3://school-north`` (at the publisher) names each
school's area; ``slate library status`` (anywhere) shows which school holds which
version, which is behind and which has not called in; ``slate library prune`` (at the
publisher) applies each image's retention rules to the versions in the library."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from typing import Any

from appliance.cli.library_args import _conn, _layout, _library
from appliance.cli.output import add_json_flag, print_json, print_table
from appliance.errors import Conflict

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 48h, 30m, 2d)")
    return timedelta(seconds=float(match[1]) * _UNIT[match[2]])


def add_library_commands(sub: Any) -> None:
    """Add status, roster and prune to the `slate library` group (called by
    appliance.cli.library; not named ``register``: the CLI would make a top-level group
    of any module's ``register``)."""
    p = sub.add_parser("status", help="the whole district: each school's versions, who is"
                       " behind, who has not called in")  # fmt: skip
    p.add_argument("--from", dest="source", default="", metavar="LIBRARY")
    p.add_argument("--write", action="store_true",
                   help="write this appliance's own status to its area first (`slate serve`"
                   " does on every sync pass)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("roster", help="the schools' areas, kept in the library (at the"
                       " publisher: --add/--rm)")  # fmt: skip
    p.add_argument("--to", "--from", dest="source", default="", metavar="LIBRARY")
    p.add_argument("--add", action="append", default=[], metavar="NAME=s3://BUCKET[/PREFIX]",
                   help="a school and its area (again: its new area)")  # fmt: skip
    p.add_argument("--rm", action="append", default=[], metavar="NAME")
    add_json_flag(p)
    p.set_defaults(func=cmd_roster)

    p = sub.add_parser("prune", help="apply each image's retention rules to what the"
                       " library holds (at the publisher)")  # fmt: skip
    p.add_argument("--to", dest="source", default="", metavar="LIBRARY")
    p.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    p.add_argument("--grace", type=_duration, default=timedelta(hours=48), metavar="DURATION",
                   help="chunks no manifest names go only when older than this (default 48h:"
                   " a publish under way keeps its chunks)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_prune)


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.district import status
    from appliance.settings import Settings
    from appliance.store import Store

    layout = _layout(args)
    conn = _conn(layout)
    lib = _library(conn, args.source)
    if args.write:
        status.write(Store(layout), layout, conn, lib,
                     interval=Settings().library_sync_interval)  # fmt: skip
    rows = status.district(lib, layout)
    if args.json:
        print_json(rows)
        return 0
    table = []
    for r in rows:
        images = ", ".join(f"{i} {v['ready'] or '-'}" for i, v in r["images"].items())
        contact = r["last_contact"] or "never"
        table.append((r["school"], contact, "yes" if r["called_in"] else "NO",
                      images or "-", ", ".join(r["behind"]) or "-",
                      r["error"] or r["failures"]))  # fmt: skip
    print_table(table, ["SCHOOL", "LAST CONTACT", "CALLED IN", "NEWEST READY", "BEHIND",
                        "FAILURES"])  # fmt: skip
    return 0


def cmd_roster(args: argparse.Namespace) -> int:
    from appliance.district import status
    from appliance.district.bucket import Bucket

    layout = _layout(args)
    lib = _library(_conn(layout), args.source)
    bucket = Bucket(lib, layout)
    if args.add or args.rm:
        if lib.publisher_key:
            raise Conflict(f"the roster of {lib.name} is kept by its publisher, not here")
        areas = status.change_roster(bucket, args.add, args.rm)
    else:
        areas = status.read_roster(bucket)
    if args.json:
        print_json(areas)
    else:
        print_table(sorted(areas.items()), ["SCHOOL", "AREA"])
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from appliance import audit
    from appliance.audit import cli_actor
    from appliance.db import transaction
    from appliance.district.bucket import Bucket
    from appliance.district.prune import prune

    layout = _layout(args)
    conn = _conn(layout)
    lib = _library(conn, args.source)
    if lib.publisher_key:
        raise Conflict(f"this appliance does not publish to {lib.name}: its publisher prunes it")
    result = prune(Bucket(lib, layout), conn, dry_run=args.dry_run, grace=args.grace)
    if not args.dry_run and (result.removed or result.chunks_removed):
        with transaction(conn):
            audit.record(conn, cli_actor(), "library.prune", lib.name,
                         f"{len(result.removed)} version(s), {len(result.chunks_removed)}"
                         " chunk(s)")  # fmt: skip
    if args.json:
        print_json(result.to_dict())
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for image, plan in result.images.items():
        print(f"{image} ({plan['rules']}): keeps {len(plan['keep'])},"
              f" {verb} {', '.join(plan['remove']) or 'nothing'}")  # fmt: skip
    print(f"chunks: {verb} {len(result.chunks_removed)}, kept {result.chunks_kept} named by a"
          f" manifest and {result.chunks_kept_young} younger than the grace period")  # fmt: skip
    return 0
