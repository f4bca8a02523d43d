"""``slate image …``: the image library (import, list, show, export, verify, note, rm, gc)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
from appliance.imagefmt.manifest import MAX_CHUNK_SIZE, MIB, MIN_CHUNK_SIZE, Manifest
from appliance.imagefmt.partitions import type_name
from appliance.jobs import versions_in_use
from appliance.store import Store, parse_ref
from appliance.store.collect import collect
from appliance.store.exporter import export_image
from appliance.store.importer import import_image
from appliance.store.index import rows
from appliance.store.verify import verify


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "image", "the image library: import, list, export, verify")
    p = sub.add_parser("import", help="import disk(s) as a new version of an image")
    p.add_argument("source", nargs="?", type=Path, help="raw image, block device or qcow2")
    p.add_argument("--disk", action="append", type=Path, default=[], metavar="SOURCE",
                   help="one more disk, in order (repeat for a multi-disk image)")  # fmt: skip
    p.add_argument("--name", required=True, help="image name (letters, digits, . _ -)")
    p.add_argument("--note", default="", help="a note kept with the version")
    p.add_argument("--chunk-size", type=_mib, default=None, metavar="MIB",
                   help="chunk size in MiB (default 4)")  # fmt: skip
    p.set_defaults(func=cmd_import)

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


def _mib(text: str) -> int:
    try:
        size = int(float(text) * MIB)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None
    if not MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE or size % 65536:
        raise argparse.ArgumentTypeError("chunk size must be 0.0625..64 MiB, in 64 KiB steps")
    return size


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
    with _progress("import") as progress:
        result = import_image(store, sources, args.name, args.note, progress=progress, **extra)
    m = result.manifest
    print(
        f"imported {m.ref}: {human_bytes(m.logical_size)} logical, "
        f"{result.new_chunks} new chunk(s), {human_bytes(result.new_bytes)} added",
        file=sys.stderr,
    )
    print(m.version)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    found = [dict(r) for r in rows(_store(args))]
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
                r["note"],
            )
            for r in found
        ],
        ["IMAGE", "VERSION", "DISKS", "SIZE", "STORED", "NOTE"],
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    name, version = parse_ref(args.ref)
    m = store.resolve(name, version)
    info = _describe(store, m)
    if args.json:
        print_json(info)
        return 0
    print(f"image    {m.ref}\ncreated  {m.created}\nnote     {m.note}\nsource   {m.source}")
    print(f"versions {', '.join(info['versions'])}")
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
    info.update(
        ref=m.ref,
        versions=store.version_ids(m.image),
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
    m = store.resolve(*parse_ref(args.ref))
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
