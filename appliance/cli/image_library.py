"""``slate image import-library DIR``: every FOG or Clonezilla image of a folder, one new
version each (see :mod:`appliance.store.import_library`).  A line per image as it
starts and ends on stderr, then a summary table (or ``--json``) on stdout; exit 1 when
one image failed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.cli.output import Progress, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import UsageError
from appliance.store import Store
from appliance.store.import_library import Entry, import_entry, scan


def register(sub: Any) -> None:
    p = sub.add_parser(
        "import-library",
        help="import every FOG or Clonezilla image of a folder (one version each)",
    )
    p.add_argument("dir", type=Path, metavar="DIR",
                   help="FOG's /images or a Clonezilla repository (/home/partimag)")  # fmt: skip
    p.add_argument("--prefix", default="", help="put this before every image name")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="NAME",
                   help="import only these folders (or image names)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="only list what would be imported under which names")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_import_library)


def cmd_import_library(args: argparse.Namespace) -> int:
    entries = scan(args.dir, args.prefix, args.only)
    planned = [e for e in entries if e.result == "planned"]
    for e in entries:
        if e.renamed and e.image:
            print(f"{e.folder.name!r} becomes the image name {e.image}", file=sys.stderr)
    if planned and not args.dry_run:
        store = Store(Layout(resolve_home(args.home)))
        for n, e in enumerate(planned, start=1):
            _import(store, e, f"[{n}/{len(planned)}]")
    if args.json:
        print_json([e.to_dict() for e in entries])
    else:
        print_table([(e.image or "-", e.folder, _result(e, args.dry_run)) for e in entries],
                    ["IMAGE", "FOLDER", "RESULT"])  # fmt: skip
    if not planned:
        raise UsageError(f"{args.dir} holds no FOG or Clonezilla image folder",
                         hint="give the folder that holds the image folders (FOG's /images,"
                         " Clonezilla's /home/partimag)")  # fmt: skip
    failed = [e for e in planned if e.result == "failed"]
    if not args.dry_run:
        done = len(planned) - len(failed)
        skipped = len(entries) - len(planned)
        print(f"{done} imported, {len(failed)} failed, {skipped} skipped", file=sys.stderr)
    return 1 if failed else 0


def _import(store: Store, e: Entry, count: str) -> None:
    print(f"{count} importing {e.folder} as {e.image} ({e.what})", file=sys.stderr)
    bars: list[Progress] = []

    def progress(total: int) -> Any:
        bars.append(Progress(total, e.image or ""))
        return bars[-1].advance

    def found(what: str) -> None:
        print(f"{count}   {what}", file=sys.stderr)

    try:
        import_entry(store, e, progress=progress, found=found)
    finally:
        for bar in bars:
            bar.close()
    if e.result == "imported":
        print(f"{count} {e.image}@{e.version}: {e.mib:.1f} MiB, {e.added_mib:.1f} MiB added"
              f" to the store, {e.seconds:.1f} s", file=sys.stderr)  # fmt: skip
    else:
        print(f"{count} {e.image} FAILED after {e.seconds:.1f} s: {e.reason}", file=sys.stderr)


def _result(e: Entry, dry_run: bool) -> str:
    if e.result == "planned":
        return f"{'would import' if dry_run else 'not imported'}: {e.what}"
    if e.result == "imported":
        return f"new version {e.version}"
    return f"{e.result}: {e.reason}"
