"""``slate library …``: the district library in an S3 bucket (docs/district.md).

At the publishing appliance: ``slate library add district s3://BUCKET/PREFIX
--endpoint URL --credentials FILE --publisher``, then ``slate library publish
win11@V``.  At a school: ``slate library add district … --trust SHA256:…`` (the
fingerprint `slate library key` prints at the publisher), then ``slate library fetch
win11`` and ``slate library versions win11`` (each version's state here)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.audit import cli_actor
from appliance.cli.library_args import _conn, _layout, _library, _rate
from appliance.cli.output import Progress, add_group, add_json_flag, print_json, print_table
from appliance.errors import Conflict, UsageError


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "library", "the district library in an S3 bucket")
    p = sub.add_parser("add", help="remember a library (an S3 bucket and prefix)")
    p.add_argument("name", help="its name here, e.g. district")
    p.add_argument("url", metavar="s3://BUCKET[/PREFIX]")
    p.add_argument("--endpoint", default="", metavar="URL",
                   help="the engine's S3 endpoint (SeaweedFS, Ceph RGW, B2 ...); none ="
                   " AWS")  # fmt: skip
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--credentials", type=Path, metavar="FILE",
                   help="an AWS-style credentials file ([default] aws_access_key_id = ...);"
                   " kept 0600 in the data directory, never printed (without it: what boto3"
                   " finds)")  # fmt: skip
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--publisher", action="store_true",
                     help="this appliance publishes to the library (it signs with its"
                     " key)")  # fmt: skip
    who.add_argument("--trust", metavar="SHA256:...",
                     help="the publisher's key fingerprint, as `slate library key` prints it"
                     " there: manifests signed by any other key are refused")  # fmt: skip
    p.add_argument("--area", default="", metavar="s3://BUCKET[/PREFIX]",
                   help="this appliance's own area, where it writes its status and state"
                   " backups (the one place a school's credentials may write)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("area", help="set this appliance's own area of a library")
    p.add_argument("name")
    p.add_argument("area", metavar="s3://BUCKET[/PREFIX]", help='"" to clear it')
    p.set_defaults(func=cmd_area)

    p = sub.add_parser("list", help="the libraries this appliance knows")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rm", help="forget a library (and its credentials file)")
    p.add_argument("name")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("key", help="this appliance's signing key and its fingerprint")
    add_json_flag(p)
    p.set_defaults(func=cmd_key)

    p = sub.add_parser("publish", help="upload a version (only the chunks the bucket lacks)")
    p.add_argument("ref", metavar="IMAGE[@VERSION]")
    p.add_argument("--to", default="", metavar="LIBRARY", help="(default: the only one)")
    p.add_argument("--cap", type=_rate, default=0, metavar="RATE",
                   help="at most this many bit/s to the library: 50M, 1G")  # fmt: skip
    p.add_argument("--window", default="", metavar="HH:MM-HH:MM",
                   help="send only inside this daily window (local time); past its end the"
                   " publish stops, and the next one sends only the rest")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("fetch", help="fetch a version (the newest by default) into the store")
    p.add_argument("ref", metavar="IMAGE[@VERSION]")
    p.add_argument("--from", dest="source", default="", metavar="LIBRARY")
    p.add_argument("--cap", type=_rate, default=0, metavar="RATE",
                   help="at most this many bit/s from the library: 50M, 1G")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "subscribe", help="fetch new versions of an image ahead of time (in a window, capped)"
    )
    p.add_argument("image")
    p.add_argument("--from", dest="source", default="", metavar="LIBRARY")
    p.add_argument("--window", default="", metavar="HH:MM-HH:MM",
                   help="only then, in this appliance's local time (18:00-06:00 wraps past"
                   " midnight); default any time")  # fmt: skip
    p.add_argument("--cap", type=_rate, default=0, metavar="RATE",
                   help="at most this many bit/s from the library: 50M, 1G")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("unsubscribe", help="stop fetching an image ahead of time")
    p.add_argument("image")
    p.add_argument("--from", dest="source", default="", metavar="LIBRARY")
    p.set_defaults(func=cmd_unsubscribe)

    p = sub.add_parser("subscriptions", help="what this appliance fetches ahead of time")
    add_json_flag(p)
    p.set_defaults(func=cmd_subscriptions)

    p = sub.add_parser(
        "sync",
        help="publish what image policies name, then run the"
        " subscriptions (those whose window is open) now",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("versions", help="the library's versions of an image and their state here")
    p.add_argument("image")
    p.add_argument("--from", dest="source", default="", metavar="LIBRARY")
    add_json_flag(p)
    p.set_defaults(func=cmd_versions)
    # More `slate library` commands, in modules of their own (no register(): the CLI
    # would make each a top-level group).
    from appliance.cli import library_district, library_state

    library_state.add_library_commands(sub)
    library_district.add_library_commands(sub)


def cmd_add(args: argparse.Namespace) -> int:
    from appliance.district import keys, libraries
    from appliance.district.bucket import PUBLISHER_KEY, Bucket
    from appliance.district.sync import claim

    layout = _layout(args)
    conn = _conn(layout)
    creds = None
    if args.credentials is not None:
        try:
            creds = args.credentials.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.credentials}: {exc.strerror}") from None
    bucket, prefix = libraries.parse_url(args.url)
    if args.area:
        libraries.parse_url(args.area)
    trial = libraries.Library(args.name, bucket, prefix, args.endpoint, args.region, "", "")
    # Look at the bucket before anything is kept: the key it names must be the trusted one.
    if creds is not None:
        layout.district.mkdir(mode=0o700, exist_ok=True)
    publisher_key = ""
    staged = libraries.credentials_path(layout, libraries.check_name(args.name))
    if any(known.name == args.name for known in libraries.all_(conn)):
        raise Conflict(f"library {args.name} exists", hint=f"`slate library rm {args.name}` first")
    try:
        if creds is not None:
            from appliance.secrets_file import write_secret

            write_secret(staged, creds)
        b = Bucket(trial, layout)
        if args.publisher:
            claim(b, layout)
        else:
            there = b.get_or_none(PUBLISHER_KEY)
            if there is None:
                raise Conflict(
                    f"{trial.url} has no publisher yet",
                    hint="add it at the publishing appliance first (--publisher), then here",
                )
            publisher_key = there.decode(errors="replace").strip()
            found = keys.fingerprint(publisher_key)
            if found != args.trust.strip():
                raise Conflict(
                    f"the library's publisher key is {found}, not {args.trust.strip()}; not added",
                    hint="compare with `slate library key` at the publishing appliance",
                )
        lib = libraries.add(conn, layout, args.name, args.url, endpoint=args.endpoint,
                            region=args.region, publisher_key=publisher_key, credentials=creds,
                            area=args.area, actor=cli_actor())  # fmt: skip
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    if args.json:
        print_json(lib.to_dict())
    else:
        who = "this appliance publishes" if args.publisher else f"publisher {found} pinned"
        print(f"library {lib.name}: {lib.url} ({who})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from appliance.district import libraries

    libs = [lib.to_dict() for lib in libraries.all_(_conn(_layout(args)))]
    if args.json:
        print_json(libs)
    else:
        print_table([(x["name"], x["url"], x["endpoint"], x["publisher"]) for x in libs],
                    ["NAME", "URL", "ENDPOINT", "PUBLISHER"])  # fmt: skip
    return 0


def cmd_area(args: argparse.Namespace) -> int:
    from appliance.district import libraries

    lib = libraries.set_area(_conn(_layout(args)), args.name, args.area, actor=cli_actor())
    print(f"library {lib.name}: this appliance's area is {lib.area or '(none)'}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from appliance.district import libraries

    layout = _layout(args)
    libraries.remove(_conn(layout), layout, args.name, actor=cli_actor())
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from appliance.district import keys

    public = keys.public_hex(keys.own_key(_layout(args)))
    if args.json:
        print_json({"public_key": public, "fingerprint": keys.fingerprint(public)})
    else:
        print(f"{keys.fingerprint(public)}  (public key {public})")
    return 0


def _bar(label: str) -> tuple[list[Progress], Any]:
    bars: list[Progress] = []

    def progress(done: int, total: int, _bytes: int) -> None:
        if not bars:
            bars.append(Progress(total, label))
        bars[0].update(done)

    return bars, progress


def cmd_publish(args: argparse.Namespace) -> int:
    from appliance.district.bucket import Bucket
    from appliance.district.pacing import Window
    from appliance.district.sync import check_ref, publish
    from appliance.store import Store

    layout = _layout(args)
    lib = _library(_conn(layout), args.to)
    if lib.publisher_key:
        raise Conflict(f"this appliance does not publish to {lib.name} (it fetches from it)")
    store = Store(layout)
    image, version = check_ref(args.ref)
    manifest = store.resolve(image, version)
    bars, progress = _bar("publish")
    try:
        moved = publish(store, Bucket(lib, layout), layout, manifest.image, manifest.version,
                        progress=progress, cap=args.cap,
                        window=Window.parse(args.window))  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print_json({"ref": manifest.ref, **moved.to_dict()})
    else:
        print(f"published {manifest.ref} to {lib.name}: {moved.moved} of {moved.chunks} chunk(s)"
              f" uploaded ({moved.bytes / 2**20:.1f} MiB) in {moved.seconds:.1f} s")  # fmt: skip
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from appliance.district.bucket import Bucket
    from appliance.district.sync import check_ref, fetch
    from appliance.store import Store

    layout = _layout(args)
    lib = _library(_conn(layout), args.source)
    image, version = check_ref(args.ref)
    bars, progress = _bar("fetch")
    try:
        manifest, moved = fetch(Store(layout), Bucket(lib, layout), layout, image, version,
                                progress=progress, cap=args.cap)  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print_json({"ref": manifest.ref, **moved.to_dict()})
    else:
        print(f"fetched {manifest.ref} from {lib.name}: {moved.moved} of {moved.chunks} chunk(s)"
              f" read ({moved.bytes / 2**20:.1f} MiB) in {moved.seconds:.1f} s; ready",
              file=sys.stderr)  # fmt: skip
        print(manifest.version)
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from appliance.district.bucket import Bucket
    from appliance.district.sync import state, versions
    from appliance.store import Store

    layout = _layout(args)
    lib = _library(_conn(layout), args.source)
    store = Store(layout)
    rows = [state(store, layout, lib.name, args.image, v)
            for v in versions(Bucket(lib, layout), args.image)]  # fmt: skip
    if args.json:
        print_json(rows)
    else:
        print_table([(r["version"], r["state"], f"{r['have']}/{r['chunks']}" if r["chunks"] else "")
                     for r in rows], ["VERSION", "HERE", "CHUNKS"])  # fmt: skip
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    from appliance.district import libraries

    layout = _layout(args)
    conn = _conn(layout)
    lib = _library(conn, args.source)
    sub = libraries.subscribe(conn, lib.name, args.image, window=args.window, cap=args.cap,
                              actor=cli_actor())  # fmt: skip
    if args.json:
        print_json(sub.to_dict())
    else:
        cap = f", at most {sub.cap / 1e6:g} Mbit/s" if sub.cap else ""
        print(f"{sub.image} from {sub.library}: new versions fetched ahead of time,"
              f" {sub.window or 'any time'}{cap} (`slate library sync` runs it now)")  # fmt: skip
    return 0


def cmd_unsubscribe(args: argparse.Namespace) -> int:
    from appliance.district import libraries

    layout = _layout(args)
    conn = _conn(layout)
    lib = _library(conn, args.source)
    libraries.unsubscribe(conn, lib.name, args.image, actor=cli_actor())
    return 0


def cmd_subscriptions(args: argparse.Namespace) -> int:
    from appliance.district import libraries

    subs = [s.to_dict() for s in libraries.subscriptions(_conn(_layout(args)))]
    if args.json:
        print_json(subs)
    else:
        print_table([(s["library"], s["image"], s["window"], s["cap"] or "-") for s in subs],
                    ["LIBRARY", "IMAGE", "WINDOW", "CAP BIT/S"])  # fmt: skip
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from appliance.district.sync import run_pass
    from appliance.store import Store

    layout = _layout(args)
    bars, progress = _bar("sync")
    try:
        rows = run_pass(Store(layout), layout, _conn(layout), progress=progress)
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print_json(rows)
    else:
        print_table([(r["library"], r["image"], r.get("version", ""), r["result"]) for r in rows],
                    ["LIBRARY", "IMAGE", "VERSION", "RESULT"])  # fmt: skip
    return 1 if any(str(r["result"]).startswith("failed") for r in rows) else 0
