"""The district view: every appliance writes a small status object to its own area, and
any appliance reads every school's (docs/district.md, "The district view").

* ``status.json`` at the root of an appliance's area (``s3://BUCKET[/PREFIX]``, see
  :meth:`Library.area_library`): its name and host name, for each image it subscribes to
  (a school) or has published (the publisher) the library's newest versions and their
  state here, its last restores and failures, the free space of its data directory, its
  sync interval and when it was written.  Written on every pass of ``slate serve``'s
  library sync (and by `slate library status --write`).
* ``areas.json`` in the library (the roster, written by the publisher with `slate
  library roster`): each school's name and area.  A school's credentials read the other
  schools' ``status.json`` only (never their backups), and engines do not list buckets
  an identity may read a single key of (SeaweedFS 4.48's ListBuckets shows a bucket only
  to identities holding a right on all of it; Ceph RGW's only its owner's): the roster is
  how the schools are found, and how a school that never called in is noticed.

The judgement (:func:`judge`) is a pure function of the statuses read, the library's
newest version of each image and the time: a school is *behind* on an image when its
newest ready version is older than the library's newest; it *has not called in* when its
status is older than twice its sync interval, or absent."""

from __future__ import annotations

import copy
import json
import shutil
import socket
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from appliance.config import Layout
from appliance.district.bucket import Bucket
from appliance.district.libraries import Library, parse_url
from appliance.errors import IntegrityError, SlateError, UsageError
from appliance.refs import version_time
from appliance.timestamps import FORMAT

STATUS_KEY = "status.json"
ROSTER_KEY = "areas.json"
FORMAT_NAME = "slate-status/1"
VERSIONS_KEPT = 3  # the newest versions of each image the status tells about
JOBS_KEPT = 5  # the last restores, and the last failures
SILENT_AFTER = 2  # sync intervals without a status: "has not called in"
DEFAULT_INTERVAL = 300.0


# -- this appliance's status --------------------------------------------------------------
def _at(bucket: Bucket, lib: Library) -> Bucket:
    """``bucket``'s client (the same endpoint and credentials) at another place of it:
    a boto3 client is slow to make (~0.3 s), a status read makes a few."""
    there = copy.copy(bucket)
    there.lib = lib
    return there


def _images(bucket: Bucket, lib: Library, conn: sqlite3.Connection) -> list[str]:
    """The images this appliance follows in ``lib``: its subscriptions (a school), or
    every image in the library (the publisher)."""
    from appliance.district import libraries

    if lib.publisher_key:
        return sorted(s.image for s in libraries.subscriptions(conn) if s.library == lib.name)
    names = {k.split("/", 2)[1] for k in bucket.keys("manifests/") if k.count("/") >= 2}
    return sorted(names)


def _jobs(conn: sqlite3.Connection, layout: Layout) -> tuple[list[dict[str, Any]], ...]:
    """(last restores that ended, last failures) through the jobs module's reads."""
    from appliance.jobs import Jobs
    from appliance.jobs.queries import recent_ids

    jobs = Jobs(conn, layout)
    restores: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for job_id in recent_ids(conn, 200, ended=True):
        if len(restores) >= JOBS_KEPT and len(failures) >= JOBS_KEPT:
            break
        job = jobs.get(job_id)
        row = {"id": job.id, "host": job.host_name, "action": job.action,
               "ref": f"{job.image}@{job.version}" if job.image else "", "state": job.state,
               "finished_at": job.finished_at or job.updated_at}  # fmt: skip
        if job.action == "restore" and len(restores) < JOBS_KEPT:
            restores.append(row)
        if job.state == "failed" and len(failures) < JOBS_KEPT:
            failures.append(row | {"reason": job.reason[:200]})
    return restores, failures


def build(
    store: Any,
    layout: Layout,
    conn: sqlite3.Connection,
    lib: Library,
    *,
    interval: float = DEFAULT_INTERVAL,
    now: datetime | None = None,
    bucket: Bucket | None = None,
) -> dict[str, Any]:
    """This appliance's status for ``lib`` (what :func:`write` puts in its area)."""
    from appliance.district.sync import state, versions

    bucket = Bucket(lib, layout) if bucket is None else bucket
    images: dict[str, Any] = {}
    for image in _images(bucket, lib, conn):
        found = sorted(versions(bucket, image), key=_when)
        images[image] = {
            "library_newest": found[-1] if found else None,
            "versions": [state(store, layout, lib.name, image, v) for v in found[-VERSIONS_KEPT:]],
        }
    restores, failures = _jobs(conn, layout)
    return {
        "format": FORMAT_NAME,
        "hostname": socket.gethostname(),
        "area": lib.area,
        "publisher": not lib.publisher_key,
        "written_at": (now or datetime.now(UTC)).strftime(FORMAT),
        "sync_interval": interval,
        "free_bytes": shutil.disk_usage(layout.home).free,
        "images": images,
        "restores": restores,
        "failures": failures,
    }


def write(
    store: Any, layout: Layout, conn: sqlite3.Connection, lib: Library, **kw: Any
) -> dict[str, Any]:
    """Put this appliance's status in its own area of ``lib``."""
    bucket = Bucket(lib, layout)
    status = build(store, layout, conn, lib, bucket=bucket, **kw)
    data = json.dumps(status, indent=1, sort_keys=True).encode()
    _at(bucket, lib.area_library()).put(STATUS_KEY, data)
    return status


def write_all(
    store: Any, layout: Layout, conn: sqlite3.Connection, **kw: Any
) -> list[tuple[str, str]]:
    """:func:`write` for each library that has an area of this appliance's; (library,
    "" or what went wrong) for each.  One library down does not stop the others."""
    from appliance.district import libraries

    out: list[tuple[str, str]] = []
    for lib in libraries.all_(conn):
        if not lib.area:
            continue
        try:
            write(store, layout, conn, lib, **kw)
            out.append((lib.name, ""))
        except SlateError as exc:
            out.append((lib.name, exc.message))
    return out


# -- the roster ---------------------------------------------------------------------------
def read_roster(bucket: Bucket) -> dict[str, str]:
    """{school: s3://area} from the library's ``areas.json`` ({} when there is none)."""
    data = bucket.get_or_none(ROSTER_KEY)
    if data is None:
        return {}
    try:
        areas = json.loads(data).get("areas", {})
        return {str(k): str(v) for k, v in dict(areas).items()}
    except (ValueError, AttributeError, TypeError):
        raise IntegrityError(f"the library {bucket.lib.name}'s {ROSTER_KEY} is not a roster",
                             hint="`slate library roster --add` at the publisher writes it"
                             " again") from None  # fmt: skip


def change_roster(
    bucket: Bucket, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> dict[str, str]:
    """Add ``NAME=s3://AREA`` entries, drop names; the publisher's credentials write it."""
    from appliance.district.libraries import check_name

    areas = read_roster(bucket)
    for item in add:
        name, sep, area = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r} is not NAME=s3://BUCKET[/PREFIX]")
        parse_url(area)
        areas[check_name(name.strip())] = area.strip()
    for name in remove:
        if areas.pop(name, None) is None:
            raise UsageError(f"{name} is not in the roster")
    body = {"areas": dict(sorted(areas.items()))}
    bucket.put(ROSTER_KEY, json.dumps(body, indent=1).encode())
    return areas


# -- reading the district -----------------------------------------------------------------
def read_all(bucket: Bucket) -> dict[str, dict[str, Any]]:
    """{school: its status, or {"error": why}, or {} when it has written none} for each
    school of the roster, and this appliance (under its roster name, else "(this
    appliance)") when it has an area."""
    lib = bucket.lib
    areas = read_roster(bucket)
    if lib.area and lib.area not in areas.values():
        areas["(this appliance)"] = lib.area
    out: dict[str, dict[str, Any]] = {}
    for name, area in sorted(areas.items()):
        try:
            where, prefix = parse_url(area)
            there = _at(bucket, replace(lib, bucket=where, prefix=prefix))
            data = there.get_or_none(STATUS_KEY)
            status = json.loads(data) if data is not None else {}
            out[name] = status if isinstance(status, dict) else {"error": "not a status"}
        except SlateError as exc:  # a bucket this identity may not read, the WAN down
            out[name] = {"error": exc.message}
        except ValueError:
            out[name] = {"error": f"its {STATUS_KEY} is not JSON"}
    return out


def library_newest(bucket: Bucket, images: Iterable[str]) -> dict[str, str | None]:
    from appliance.district.sync import versions

    out: dict[str, str | None] = {}
    for image in sorted(set(images)):
        found = sorted(versions(bucket, image), key=_when)
        out[image] = found[-1] if found else None
    return out


def images_named(statuses: Mapping[str, Mapping[str, Any]]) -> set[str]:
    return {str(i) for s in statuses.values() for i in dict(s.get("images") or {})}


def _parse_time(text: object) -> datetime | None:
    try:
        return datetime.strptime(str(text), FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _when(version: str) -> datetime:
    """A version's time (its id; ids of one second differ by a fraction: "…50Z" is older
    than "…50.8Z", though it sorts after it as text)."""
    try:
        return version_time(version)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def judge(
    statuses: Mapping[str, Mapping[str, Any]],
    newest: Mapping[str, str | None],
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per school: last contact, whether it has called in, and for each image it
    follows its newest ready version and whether it is behind the library's newest."""
    rows: list[dict[str, Any]] = []
    for name, status in sorted(statuses.items()):
        written = _parse_time(status.get("written_at"))
        interval = float(status.get("sync_interval") or DEFAULT_INTERVAL)
        age = (now - written).total_seconds() if written else None
        silent = age is None or age > SILENT_AFTER * interval
        images: dict[str, Any] = {}
        for image, info in sorted(dict(status.get("images") or {}).items()):
            ready = sorted((str(v["version"]) for v in info.get("versions", [])
                            if v.get("state") == "ready"), key=_when)  # fmt: skip
            mine = ready[-1] if ready else None
            theirs = newest.get(image) or info.get("library_newest")
            behind = bool(theirs) and (mine is None or _when(mine) < _when(str(theirs)))
            images[image] = {"ready": mine, "library": theirs, "behind": behind}
        rows.append({
            "school": name,
            "hostname": status.get("hostname"),
            "last_contact": status.get("written_at"),
            "age_seconds": None if age is None else round(age),
            "called_in": not silent,
            "error": status.get("error"),
            "images": images,
            "behind": sorted(i for i, v in images.items() if v["behind"]),
            "failures": len(status.get("failures") or []),
            "free_bytes": status.get("free_bytes"),
        })  # fmt: skip
    return rows


def district(lib: Library, layout: Layout, now: datetime | None = None) -> list[dict[str, Any]]:
    """The whole district as `slate library status` and the console show it."""
    bucket = Bucket(lib, layout)
    statuses = read_all(bucket)
    newest = library_newest(bucket, images_named(statuses))
    return judge(statuses, newest, now or datetime.now(UTC))
