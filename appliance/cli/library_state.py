"""``slate library state-key | backup-state | restore-appliance``: the appliance's own
state in its area of the library (docs/disaster-recovery.md, first section).

``state-key`` makes the key the backups are sealed with (once; it prints it once),
``backup-state`` backs up now (``slate serve`` does it daily), and on a new machine
``restore-appliance s3://AREA --endpoint URL --credentials FILE --key-file FILE`` brings
the state back and fetches every version from the library."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from appliance import db
from appliance.cli.output import Progress, add_json_flag, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import Conflict, SlateError, UsageError


def add_library_commands(sub: Any) -> None:
    """Add the subcommands to the ``slate library`` group (its subparsers ``sub``)."""
    p = sub.add_parser(
        "state-key",
        help="make the key this appliance's state backups are sealed with (printed once)",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_state_key)

    p = sub.add_parser(
        "backup-state", help="back up this appliance's state to its area now (daily by itself)"
    )
    p.add_argument("--library", default="", metavar="NAME",
                   help="(default: every library with an area of this appliance's)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_backup_state)

    p = sub.add_parser(
        "restore-appliance",
        help="on a new machine: bring back a lost appliance's state from its area, then"
        " every version from the library",
    )
    p.add_argument("area", metavar="s3://BUCKET[/PREFIX]",
                   help="the lost appliance's area (`slate library list` showed it)")  # fmt: skip
    p.add_argument("--endpoint", default="", metavar="URL",
                   help="the engine's S3 endpoint (none = AWS)")  # fmt: skip
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--credentials", type=Path, metavar="FILE",
                   help="an AWS-style credentials file that may read the area (the lost"
                   " appliance's own; without it: what boto3 finds)")  # fmt: skip
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--key", metavar="KEY", help="the state key `slate library state-key` printed (ABCD-...)"
    )
    key.add_argument("--key-file", type=Path, metavar="FILE",
                     help="read the state key from FILE (- = standard input)")  # fmt: skip
    p.add_argument("--backup", default="", metavar="NAME",
                   help="this backup (its time stamp, e.g. 20261207T020000Z) instead of the"
                   " newest")  # fmt: skip
    p.add_argument("--list", action="store_true",
                   help="only list the backups in the area")  # fmt: skip
    p.add_argument("--all", action="store_true",
                   help="fetch every version the libraries hold, not only the ones the"
                   " appliance had")  # fmt: skip
    p.add_argument("--no-fetch", action="store_true",
                   help="bring back the state only (`slate library fetch` later)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_restore_appliance)


def _layout(args: argparse.Namespace) -> Layout:
    return Layout(resolve_home(args.home))


# -- state-key ----------------------------------------------------------------------------
def cmd_state_key(args: argparse.Namespace) -> int:
    from appliance.audit import cli_actor, record
    from appliance.district import statebackup

    layout = _layout(args)
    key, made = statebackup.create_key(layout)
    fp = statebackup.fingerprint(key)
    if made:
        record(db.connect(layout.db), cli_actor(), "library.state-key", fp, "made")
    if args.json:
        print_json({"fingerprint": fp, "made": made,
                    **({"key": statebackup.format_key(key)} if made else {})})  # fmt: skip
    elif made:
        print(f"state key: {statebackup.format_key(key)}")
        print(f"fingerprint: {fp}")
        print(
            "Write the key down or keep it in the school's password safe, away from this"
            " appliance: without it no backup of its state can be restored.  It is not"
            " shown again.",
            file=sys.stderr,
        )
    else:
        print(f"fingerprint: {fp}")
        print("(the key was shown once, when it was made; it is not shown again)",
              file=sys.stderr)  # fmt: skip
    return 0


# -- backup-state -------------------------------------------------------------------------
def cmd_backup_state(args: argparse.Namespace) -> int:
    from appliance.district import libraries, statebackup
    from appliance.district.bucket import Bucket

    layout = _layout(args)
    conn = db.connect(layout.db)
    key = statebackup.own_key(layout)
    if key is None:
        raise UsageError(
            "this appliance has no state key yet",
            hint="`slate library state-key` makes it (and prints it once: keep it)",
        )
    libs = [libraries.get(conn, args.library)] if args.library else libraries.all_(conn)
    libs = [lib for lib in libs if lib.area or args.library]
    if not libs:
        raise UsageError(
            "no library has an area of this appliance's to back up to",
            hint="`slate library area NAME s3://BUCKET[/PREFIX]` (the bucket the district gave"
            " this appliance)",
        )
    made = [statebackup.backup(layout, Bucket(lib.area_library(), layout), key) for lib in libs]
    if args.json:
        print_json([m.to_dict() for m in made])
        return 0
    for m in made:
        counts = m.facts["counts"]
        print(f"{m.url}/{m.name}: {m.bytes / 1024:.1f} KiB sealed with {m.key};"
              f" {counts.get('hosts', 0)} host(s), {counts.get('rooms', 0)} room(s),"
              f" {counts.get('schedules', 0)} schedule(s), {len(m.facts['versions'])}"
              f" version(s) named")  # fmt: skip
        if m.removed:
            print(f"  removed {len(m.removed)} older backup(s): kept the newest"
                  f" {statebackup.KEEP}")  # fmt: skip
    return 0


# -- restore-appliance --------------------------------------------------------------------
def _read_key(args: argparse.Namespace) -> bytes:
    from appliance.district import statebackup

    if args.key is not None:
        return statebackup.parse_key(args.key)
    try:
        text = sys.stdin.read() if str(args.key_file) == "-" else args.key_file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {args.key_file}: {exc.strerror}") from None
    return statebackup.parse_key(text)


def _area_bucket(args: argparse.Namespace, scratch: Path) -> Any:
    """The area as a Bucket, with the credentials given: nothing of them is written to
    the data directory (the restored state brings the appliance's own)."""
    from appliance.district import libraries
    from appliance.district.bucket import Bucket
    from appliance.secrets_file import write_secret

    bucket, prefix = libraries.parse_url(args.area)
    lib = libraries.Library("area", bucket, prefix, args.endpoint, args.region, "-", "")
    there = Layout(scratch)
    if args.credentials is not None:
        try:
            creds = args.credentials.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.credentials}: {exc.strerror}") from None
        there.district.mkdir(mode=0o700)
        write_secret(libraries.credentials_path(there, lib.name), creds)
    return Bucket(lib, there)


def cmd_restore_appliance(args: argparse.Namespace) -> int:
    from appliance.district import statebackup

    layout = _layout(args)
    key = _read_key(args)
    if not args.list:
        present = statebackup.existing_state(layout)
        if present:
            raise Conflict(
                f"the data directory {layout.home} already holds an appliance's state"
                f" ({', '.join(present[:4])}); nothing was restored",
                hint="restore-appliance fills a new, empty data directory: give another"
                " --home, or move this one aside first",
            )
    with tempfile.TemporaryDirectory(prefix="slate-restore-") as scratch:
        area = _area_bucket(args, Path(scratch))
        if args.list:
            rows = [(k, size) for k, size in statebackup.backups(area)]
            if args.json:
                print_json([{"object": k, "bytes": size} for k, size in rows])
            else:
                print_table(rows, ["OBJECT", "BYTES"])
            return 0
        name = statebackup.newest(area, args.backup)
        blob = area.get(name)
    what = f"the backup {name}"
    files = statebackup.unpack(statebackup.unseal(key, blob, what), what)
    meta = statebackup.meta_of(files)
    # Decrypted and whole: only now is anything written.
    layout.home.mkdir(parents=True, exist_ok=True)
    statebackup.write(layout, files)
    statebackup.keep_key(layout, key)  # the daily backup goes on with the same key
    conn = db.connect(layout.db)  # migrates a backup made by an older Slate
    from appliance.audit import cli_actor, record

    record(conn, cli_actor(), "library.restore-appliance", name, f"from {args.area}")
    print(f"restored the state of {meta.get('hostname', '?')} as of {meta.get('created')}"
          f" from {args.area}/{name}", file=sys.stderr)  # fmt: skip
    fetched: list[dict[str, Any]] = []
    if not args.no_fetch:
        fetched = _fetch_versions(layout, conn, meta, every=args.all)
    report = _report(layout, conn, meta, name, fetched)
    if args.json:
        print_json(report)
    else:
        _print_report(report)
    failed = [r for r in fetched if str(r["result"]).startswith("failed")]
    return 1 if failed else 0


def _fetch_versions(
    layout: Layout, conn: sqlite3.Connection, meta: dict[str, Any], *, every: bool
) -> list[dict[str, Any]]:
    """Fetch, from each restored library, the versions the appliance had (all it
    published, for a library it publishes to; ``every``: all the library holds)."""
    from appliance.district import libraries, statebackup
    from appliance.district.bucket import Bucket
    from appliance.district.sync import fetch
    from appliance.store import Store, index

    store = Store(layout)
    had = set(meta.get("versions", []))
    rows: list[dict[str, Any]] = []
    todo: list[tuple[Any, Any, str, str]] = []
    for lib in libraries.all_(conn):
        bucket = Bucket(lib, layout)
        try:
            held = sorted(statebackup.library_versions(bucket))
        except SlateError as exc:
            rows.append({"library": lib.name, "ref": "", "result": f"failed: {exc.message}"})
            print(f"library {lib.name}: {exc.message}", file=sys.stderr)
            continue
        publishes = lib.publisher_key == ""
        for image, version in held:
            ref = f"{image}@{version}"
            if every or publishes or ref in had:
                todo.append((lib, bucket, image, version))
    seen: set[str] = set()
    for n, (lib, bucket, image, version) in enumerate(todo, 1):
        ref = f"{image}@{version}"
        if ref in seen:  # the same version in two libraries: once
            continue
        seen.add(ref)
        print(f"[{n}/{len(todo)}] fetching {ref} from {lib.name}", file=sys.stderr)
        bars: list[Progress] = []

        def progress(
            done: int, total: int, _bytes: int, bars: list[Progress] = bars, label: str = ref
        ) -> None:
            if not bars:
                bars.append(Progress(total, label))
            bars[0].update(done)

        try:
            _, moved = fetch(store, bucket, layout, image, version, progress=progress)
            rows.append({"library": lib.name, "ref": ref, "result": "ready", **moved.to_dict()})
        except SlateError as exc:
            rows.append({"library": lib.name, "ref": ref, "result": f"failed: {exc.message}"})
            print(f"{ref}: {exc.message}", file=sys.stderr)
        finally:
            for bar in bars:
                bar.close()
    for ref in sorted(had - seen):
        image, _, version = ref.partition("@")
        if store.manifest_path(image, version).exists():
            continue
        rows.append({"library": "", "ref": ref, "result": "lost: in no library"})
    index.sync(store)  # the restored index, in line with the versions that came back
    return rows


def _report(
    layout: Layout,
    conn: sqlite3.Connection,
    meta: dict[str, Any],
    name: str,
    fetched: list[dict[str, Any]],
) -> dict[str, Any]:
    from appliance.district import statebackup

    facts = statebackup.db_facts(conn)
    return {
        "backup": name,
        "created": meta.get("created"),
        "hostname": meta.get("hostname"),
        "counts": facts["counts"],
        "libraries": facts["libraries"],
        "versions": fetched,
        "home": str(layout.home),
    }


def _print_report(report: dict[str, Any]) -> None:
    counts = report["counts"]
    print(f"state of {report['hostname']} as of {report['created']} ({report['backup']}):"
          f" {counts.get('hosts', 0)} host(s), {counts.get('rooms', 0)} room(s),"
          f" {counts.get('schedules', 0)} schedule(s), {counts.get('users', 0)} user(s);"
          f" its libraries: {', '.join(report['libraries']) or '(none)'}")  # fmt: skip
    rows = report["versions"]
    if rows:
        print_table([(r["ref"], r["library"], r["result"], r.get("moved", "")) for r in rows],
                    ["VERSION", "LIBRARY", "RESULT", "CHUNKS READ"])  # fmt: skip
    lost = [r for r in rows if r["result"].startswith("lost")]
    if lost:
        print(f"{len(lost)} version(s) the appliance had are in no library (never"
              " published): capture them again, or copy them from a copy of the old store",
              file=sys.stderr)  # fmt: skip
