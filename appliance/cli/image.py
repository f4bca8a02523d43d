"""``slate image …``: the image library (import, list, show, export, verify, note, rm, gc)
and its backups (versions, promote, keep, policy, prune)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from appliance import audit
from appliance.audit import cli_actor
from appliance.backups import prune
from appliance.cli import image_library
from appliance.cli.output import (
    Progress,
    add_group,
    add_json_flag,
    human_bytes,
    print_json,
    print_table,
)
from appliance.config import Layout, resolve_home
from appliance.errors import Conflict, IntegrityError, UsageError
from appliance.formats.manifest import MAX_CHUNK_SIZE, MIB, MIN_CHUNK_SIZE, Manifest
from appliance.formats.partitions import type_name
from appliance.jobs import versions_in_use
from appliance.machines import identity
from appliance.store import Store, parse_ref
from appliance.store import policy as policies
from appliance.store.collect import collect
from appliance.store.detect import FORMATS
from appliance.store.exporter import export_image
from appliance.store.importer import import_image
from appliance.store.index import rows
from appliance.store.library import check_name
from appliance.store.lineage import history
from appliance.store.policy import KEEP_FIELDS
from appliance.store.verify import verify


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "image", "the image library: import, list, export, verify")
    p = sub.add_parser("import", help="import disk(s) as a new version of an image")
    p.add_argument("source", nargs="?", type=Path,
                   help="raw disk image, block device, VM disk (qcow2, VMDK, VHD, VHDX, VDI),"
                   " partclone image, FOG or Clonezilla image directory")  # fmt: skip
    p.add_argument("--disk", action="append", type=Path, default=[], metavar="SOURCE",
                   help="one more disk, in order (repeat for a multi-disk image)")  # fmt: skip
    p.add_argument("--name", required=True, help="image name (letters, digits, . _ -)")
    p.add_argument("--note", default="", help="a note kept with the version")
    p.add_argument("--chunk-size", type=_mib, default=None, metavar="MIB",
                   help="chunk size in MiB (default 4)")  # fmt: skip
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="auto",
                   help="what the source is (default: recognized by its content; something"
                   " that is not a disk image is refused, --format raw insists)")  # fmt: skip
    p.set_defaults(func=cmd_import)
    image_library.register(sub)

    p = sub.add_parser("list", help="list images and their versions")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="disks, partitions and sizes of a version")
    p.add_argument("ref", metavar="NAME[@VERSION]")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="write a version to raw file(s) or block device(s)")
    p.add_argument("ref", metavar="NAME[@VERSION]")
    p.add_argument("dest", nargs="+", type=Path, metavar="DEST", help="one per disk")
    p.add_argument("--disk", type=int, help="export only disk N (0-based)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="check every chunk of all (or one) version(s)")
    p.add_argument("ref", nargs="?", metavar="NAME[@VERSION]")
    add_json_flag(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("rm", help="remove one version (its chunks go at the next gc)")
    p.add_argument("ref", metavar="NAME@VERSION")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("note", help="change the note of a version")
    p.add_argument("ref", metavar="NAME@VERSION")
    p.add_argument("text", help="the new note (one line)")
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("gc", help="remove chunks no version uses")
    add_json_flag(p)
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("versions", help="versions of an image: sizes, marks, what each shares")
    p.add_argument("name", metavar="NAME")
    add_json_flag(p)
    p.set_defaults(func=cmd_versions)

    for verb, text in (
        ("promote", "let NAME, rooms and rules resolve to this (captured) version"),
        ("unpromote", "make a version a candidate again (only NAME@VERSION restores it)"),
        ("keep", "never let retention remove this version"),
        ("unkeep", "let retention decide about this version again"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("ref", metavar="NAME@VERSION")
        p.set_defaults(func=cmd_mark, verb=verb)

    p = sub.add_parser("fit", help="a derived version whose last partition fits a smaller disk")
    p.add_argument("ref", metavar="NAME@VERSION")
    p.add_argument("--size", required=True, metavar="SIZE",
                   help="the smaller disk's size: bytes, or e.g. 100GiB, 120GB")  # fmt: skip
    p.add_argument("--disk", type=int, default=0, help="which disk of the image (0-based)")
    add_json_flag(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("policy", help="auto-promotion and retention of an image")
    p.add_argument("name", metavar="NAME")
    auto = p.add_mutually_exclusive_group()
    auto.add_argument("--auto-promote", dest="auto_promote", action="store_true", default=None,
                      help="promote every capture at commit (FOG's behaviour)")  # fmt: skip
    auto.add_argument("--no-auto-promote", dest="auto_promote", action="store_false",
                      help="a capture is a candidate until promoted (the default)")  # fmt: skip
    for f in KEEP_FIELDS:
        p.add_argument(f"--{f.replace('_', '-')}", type=_count, metavar="N",
                       help=f"retention: keep {f[5:]} N ('none': no such rule)")  # fmt: skip
    ident = p.add_mutually_exclusive_group()
    ident.add_argument("--identity", dest="identity", action="store_true", default=None,
                       help="after a restore, write each machine's host name, machine-id and"
                       " SSH host keys into the restored system (the default)")  # fmt: skip
    ident.add_argument("--no-identity", dest="identity", action="store_false",
                       help="write no identity (sysprep or cloud-init sets it)")  # fmt: skip
    pub = p.add_mutually_exclusive_group()
    pub.add_argument("--publish", metavar="LIBRARY",
                     help="publish each newly promoted version to this district library"
                     " (`slate serve`'s library pass, or `slate library sync` now)")  # fmt: skip
    pub.add_argument("--no-publish", dest="publish", action="store_const", const="",
                     help="publish nothing by itself")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=cmd_policy)

    p = sub.add_parser("prune", help="remove the versions retention does not keep, then gc")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dry-run", action="store_true", help="only say what would go")
    add_json_flag(p)
    p.set_defaults(func=cmd_prune)


def _mib(text: str) -> int:
    try:
        size = int(float(text) * MIB)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None
    if not MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE or size % 65536:
        raise argparse.ArgumentTypeError("chunk size must be 0.0625..64 MiB, in 64 KiB steps")
    return size


def _count(text: str) -> int | str:
    if text.lower() == "none":
        return "none"
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (a number, or 'none')")
    return int(text)


def _store(args: argparse.Namespace) -> Store:
    return Store(Layout(resolve_home(args.home)))


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int], Callable[[int], None]]]:
    bars: list[Progress] = []

    def start(total: int) -> Callable[[int], None]:
        bars.append(Progress(total, label))
        return bars[-1].advance

    try:
        yield start
    finally:
        for bar in bars:
            bar.close()


def cmd_import(args: argparse.Namespace) -> int:
    sources = ([args.source] if args.source else []) + args.disk
    if not sources:
        raise UsageError("no source given", hint="slate image import DISK.img --name NAME")
    store = _store(args)
    extra = {"chunk_size": args.chunk_size} if args.chunk_size else {}

    def found(path: Path, what: str) -> None:
        print(f"{path}: {what}", file=sys.stderr)

    with _progress("import") as progress:
        result = import_image(store, sources, args.name, args.note, progress=progress,
                              fmt=args.fmt, found=found, **extra)  # fmt: skip
    m = result.manifest
    print(
        f"imported {m.ref}: {human_bytes(m.logical_size)} logical, "
        f"{result.new_chunks} new chunk(s), {human_bytes(result.new_bytes)} added",
        file=sys.stderr,
    )
    print(m.version)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    found = [dict(r) for r in rows(store)]
    marks = {name: store.marks(name) for name in {r["image"] for r in found}}
    for r in found:
        m = marks[r["image"]].get(r["version"], frozenset())
        r["promoted"], r["keep"] = "candidate" not in m, "keep" in m
    if args.json:
        print_json(found)
        return 0
    print_table(
        [
            (
                r["image"],
                r["version"],
                r["disks"],
                human_bytes(r["logical_size"]),
                human_bytes(r["stored_size"]),
                _status(r),
                r["note"],
            )
            for r in found
        ],
        ["IMAGE", "VERSION", "DISKS", "SIZE", "STORED", "STATUS", "NOTE"],
    )
    return 0


def _status(r: dict[str, Any]) -> str:
    return ("promoted" if r["promoted"] else "candidate") + (", keep" if r["keep"] else "")


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    m = store.resolve_ref(args.ref)
    info = _describe(store, m)
    if args.json:
        print_json(info)
        return 0
    print(f"image    {m.ref}\ncreated  {m.created}\nnote     {m.note}\nsource   {m.source}")
    print(f"status   {_status(info)}")
    for text in m.warnings:  # what the capture found (e.g. a Windows not generalized)
        print(f"WARNING  {text}")
    candidates = set(info["versions"]) - set(info["promoted_versions"])
    listed = [v + (" (candidate)" if v in candidates else "") for v in info["versions"]]
    print(f"versions {', '.join(listed)}")
    print(
        f"size     {human_bytes(m.logical_size)} logical, "
        f"{human_bytes(info['data_size'])} data, {human_bytes(info['stored_size'])} stored "
        f"({info['chunks']} chunks; {info['shared_chunks']} shared with other versions, "
        f"{human_bytes(info['unique_stored_size'])} only here)"
    )
    for other, n in info["shared_with"].items():
        print(f"         {n} chunk(s) shared with {other}")
    for d in m.disks:
        print(
            f"disk {d.index}   {human_bytes(d.size)} ({d.size} bytes), sectors "
            f"{d.logical_sector_size}/{d.physical_sector_size}, table {d.table}, "
            f"chunk {human_bytes(d.chunk_size)}" + (f", {d.model} {d.serial}" if d.model else "")
        )
        print_table(
            [
                (p.number, p.start, human_bytes(p.size), type_name(p.type), p.fs, p.name)
                for p in d.partitions
            ],
            ["  #", "START", "SIZE", "TYPE", "FS", "NAME"],
        )
    return 0


def _describe(store: Store, m: Manifest) -> dict[str, Any]:
    mine = m.digests()
    shared: set[str] = set()
    shared_with: dict[str, int] = {}
    for other in store.all_manifests():
        if other.ref == m.ref:
            continue
        common = mine & other.digests()
        if common:
            shared |= common
            shared_with[other.ref] = len(common)
    info = m.to_dict()
    info.pop("disks")
    info["warnings"] = list(m.warnings)
    info.update(
        ref=m.ref,
        versions=store.version_ids(m.image),
        promoted_versions=store.promoted_ids(m.image),
        promoted=store.is_promoted(m.image, m.version),
        keep=store.mark_path(m.image, m.version, "keep").exists(),
        logical_size=m.logical_size,
        data_size=sum(d.bytes_of("hash") for d in m.disks),
        stored_size=store.stored_size(mine),
        chunks=len(mine),
        shared_chunks=len(shared),
        unique_stored_size=store.stored_size(mine - shared),
        shared_with=shared_with,
        disks=[
            {k: v for k, v in d.to_dict().items() if k != "chunks"}
            | {"zero_size": d.bytes_of("zero"), "data_size": d.bytes_of("hash")}
            for d in m.disks
        ],
    )
    return info


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    m = store.resolve_ref(args.ref)
    with _progress("export") as progress:
        stats = export_image(store, m, args.dest, disk=args.disk, force=args.force,
                             progress=progress)  # fmt: skip
    verified = sum(s.verified for s in stats)
    print(f"exported {m.ref} to {', '.join(map(str, args.dest))}: "
          f"{human_bytes(verified)} verified")  # fmt: skip
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = _store(args)
    name, version = parse_ref(args.ref) if args.ref else (None, None)
    with _progress("verify") as progress:
        result = verify(store, name, version, progress=progress)
    if args.json:
        print_json({"ok": result.ok, "versions": result.versions, "chunks": result.chunks,
                    "bytes": result.bytes, "damaged": result.damaged, "used_by": result.users,
                    "bad_manifests": result.bad_manifests})  # fmt: skip
    else:
        for ref, problem in result.bad_manifests.items():
            print(f"BAD manifest {ref}: {problem}")
        for digest, problem in sorted(result.damaged.items()):
            users = ", ".join(result.users.get(digest, [])) or "no version"
            print(f"DAMAGED {digest}: {problem}; used by {users}")
        print(f"checked {len(result.versions)} version(s), {result.chunks} chunk(s), "
              f"{human_bytes(result.bytes)}")  # fmt: skip
    if not result.ok:
        affected = sorted({v for refs in result.users.values() for v in refs})
        raise IntegrityError(
            f"{len(result.damaged)} damaged or missing chunk(s), "
            f"{len(result.bad_manifests)} bad manifest(s); affected: "
            f"{', '.join(affected + sorted(result.bad_manifests)) or 'none'}",
            hint="delete the damaged chunk files named above, then re-import the source "
            "(a re-import rewrites them); or `slate image rm` the affected versions",
        )
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    name, version = parse_ref(args.ref)
    if version is None:
        raise UsageError("say which version to remove: NAME@VERSION",
                         hint=f"`slate image show {name}` lists its versions")  # fmt: skip
    store = _store(args)
    store.load(name, version)  # NotFound with its hint before anything else
    if (name, version) in versions_in_use(store.db()):
        raise Conflict(
            f"{name}@{version} is used by a job that has not ended",
            hint="wait for the job or `slate job cancel` it (see `slate job list`)",
        )
    store.remove(name, version)
    print(f"removed {name}@{version} (run `slate image gc` to free its chunks)")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    name, version = parse_ref(args.ref)
    if version is None:
        raise UsageError("say which version: NAME@VERSION",
                         hint=f"`slate image show {name}` lists its versions")  # fmt: skip
    _store(args).set_note(name, version, args.text)
    print(f"{name}@{version}: note set")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    r = collect(_store(args))
    if args.json:
        print_json(vars(r))
    else:
        print(f"removed {r.removed} chunk(s), freed {human_bytes(r.freed)}; kept {r.kept}; "
              f"{r.tmp_removed} temp file(s) removed; {len(r.live_sessions)} import(s) "
              f"in progress")  # fmt: skip
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    store = _store(args)
    store.resolve(args.name)  # NotFound with its hint
    found = history(store, args.name)
    if args.json:
        print_json(found)
        return 0
    print_table(
        [
            (
                r["version"],
                _status(r),
                human_bytes(r["logical_size"]),
                human_bytes(r["stored_size"]),
                f"{r['shared_chunks']}/{r['chunks']} chunks, {human_bytes(r['shared_bytes'])}"
                if i
                else "-",
                human_bytes(r["new_bytes"]),
                r["note"],
            )
            for i, r in enumerate(found)
        ],
        ["VERSION", "STATUS", "SIZE", "STORED", "SHARED WITH PREVIOUS", "NEW", "NOTE"],
    )
    return 0


_MARK = {
    "promote": ("candidate", False, "promoted"),
    "unpromote": ("candidate", True, "is a candidate again"),
    "keep": ("keep", True, "kept whatever retention says"),
    "unkeep": ("keep", False, "left to retention"),
}


def cmd_mark(args: argparse.Namespace) -> int:
    name, version = parse_ref(args.ref)
    if version is None:
        raise UsageError("say which version: NAME@VERSION",
                         hint=f"`slate image versions {name}` lists them")  # fmt: skip
    store = _store(args)
    mark, on, said = _MARK[args.verb]
    changed = store.set_mark(name, version, mark, on)
    if changed:
        audit.record(store.db(), cli_actor(), f"image.{args.verb}", f"{name}@{version}")
    print(f"{name}@{version} {said}" + ("" if changed else " (it already was)"))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from appliance.store import fit  # its tools (resize2fs, ntfsresize) only when fitting

    name, version = parse_ref(args.ref)
    if version is None:
        raise UsageError("say which version to fit: NAME@VERSION",
                         hint=f"`slate image versions {name}` lists them")  # fmt: skip
    store = _store(args)
    r = fit.fit(store, store.load(name, version), fit.parse_size(args.size), disk=args.disk)
    m = r.manifest
    promoted = store.is_promoted(m.image, m.version)
    audit.record(store.db(), cli_actor(), "image.fit", m.ref, f"from {r.source.ref}, "
                 f"{r.new_size} bytes")  # fmt: skip
    if args.json:
        print_json({"image": m.image, "version": m.version, "from": r.source.ref,
                    "disk": r.disk, "partition": r.partition, "old_size": r.old_size,
                    "size": r.new_size, "minimum": r.minimum, "new_chunks": r.new_chunks,
                    "new_bytes": r.new_bytes, "promoted": promoted})  # fmt: skip
        return 0
    print(f"fitted {r.source.ref} to {human_bytes(r.new_size)} ({r.new_size} bytes): "
          f"{m.ref}, partition {r.partition} shrunk (its data needs at least "
          f"{human_bytes(r.minimum)}); {r.new_chunks} new chunk(s), "
          f"{human_bytes(r.new_bytes)} added")  # fmt: skip
    if not promoted:
        print(f"{m.ref} is a candidate: restore it by its exact id, or "
              f"`slate image promote {m.ref}`")  # fmt: skip
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    store = _store(args)
    conn = store.db()
    current = policies.get(conn, check_name(args.name))
    changes: dict[str, Any] = {}
    if args.auto_promote is not None:
        changes["auto_promote"] = args.auto_promote
    for f in KEEP_FIELDS:
        value = getattr(args, f)
        if value is not None:
            changes[f] = None if value == "none" else value
    if args.publish is not None:
        if args.publish:
            from appliance.district import libraries

            lib = libraries.get(conn, args.publish)  # NotFound with its hint
            if lib.publisher_key:
                raise UsageError(
                    f"this appliance does not publish to the library {lib.name} (it trusts"
                    " another appliance's key)",
                    hint="publish from the library's publishing appliance",
                )
        changes["publish"] = args.publish
    if changes:
        current = policies.put(conn, dataclasses.replace(current, **changes))
        detail = ", ".join(f"{k}={v}" for k, v in changes.items())
        audit.record(conn, cli_actor(), "image.policy", args.name, detail)
    if args.identity is not None:
        identity.set_image_enabled(conn, args.name, args.identity, actor=cli_actor())
    written = identity.image_enabled(conn, args.name)
    if args.json:
        print_json({**current.to_dict(), "identity": written})
        return 0
    auto = "promoted at commit" if current.auto_promote else "candidates until promoted"
    print(f"{args.name}: captures are {auto}; retention: {current.describe()}")
    print(f"{args.name}: identity " + ("written into each restored machine" if written else
          "off (the image's sysprep or cloud-init sets it)"))  # fmt: skip
    if current.publish:
        print(f"{args.name}: each newly promoted version is published to the library"
              f" {current.publish}")  # fmt: skip
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    store = _store(args)
    result = prune.prune(store, args.name, actor=cli_actor(), dry_run=args.dry_run)
    if args.json:
        print_json(result.to_dict())
        return 0
    gone = result.remove if args.dry_run else result.removed
    verb = "would remove" if args.dry_run else "removed"
    print(f"{args.name} ({result.rules}): {verb} {len(gone)} version(s), "
          f"keeps {len(result.keep)}")  # fmt: skip
    for v in gone:
        print(f"  - {v}")
    for v, why in sorted(result.keep.items()):
        print(f"  = {v}  ({'; '.join(why)})")
    if result.gc is not None:
        print(f"gc: removed {result.gc.removed} chunk(s), freed {human_bytes(result.gc.freed)}")
    return 0
