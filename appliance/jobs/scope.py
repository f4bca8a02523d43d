"""What a job token may do beyond "be this job" (docs/security.md).

A token is readable by anyone on the PXE network (it is on the kernel command line
that ``/boot/<mac>.ipxe`` hands out), so it is worth exactly its job:

* It is **bound at first use**: the client's first ``GET /job`` fixes the job's client
  address; calls from any other address are refused, counted and shown on the console.
* A **restore** token reads its own version's manifest and the chunks it names.
* A **capture** token reads the versions of its image committed before the job was
  created (its *bases*, for a delta upload) and their chunks, and may name in its commit
  only those chunks and the ones it uploaded itself (each verified against its name on
  arrival, so an upload proves the client has the bytes).  Anything else in the library
  is invisible to it: ``/capture/missing`` reports any other chunk as missing.

The tables are those of migration 0008.  Functions take a connection and do no HTTP.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.errors import NotFound
from appliance.store.library import version_key

Digests = Callable[[str, str], frozenset[str]]  # (image, version) → chunk names


@dataclass(frozen=True)
class Binding:
    """The address a job's token is bound to, and calls refused from elsewhere."""

    address: str | None
    refused_calls: int
    refused_from: str


def bound_address(conn: sqlite3.Connection, job_id: int) -> str | None:
    row = conn.execute("SELECT client_addr FROM jobs WHERE id=?", (job_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def bind(conn: sqlite3.Connection, job_id: int, address: str) -> str:
    """Bind the job to ``address`` if it is not bound yet; return the bound address."""
    conn.execute(
        "UPDATE jobs SET client_addr=? WHERE id=? AND client_addr IS NULL", (address, job_id)
    )
    row = conn.execute("SELECT client_addr FROM jobs WHERE id=?", (job_id,)).fetchone()
    return str(row[0]) if row and row[0] is not None else address


def refuse(conn: sqlite3.Connection, job_id: int, address: str) -> bool:
    """Count a call refused from ``address``; True when it deserves a job-log line (the
    first from each new address and every 100th after that: a flood stays one line)."""
    row = conn.execute(
        "SELECT refused_calls, refused_from FROM jobs WHERE id=?", (job_id,)
    ).fetchone()
    count, last = (int(row[0]), str(row[1])) if row else (0, "")
    conn.execute(
        "UPDATE jobs SET refused_calls=refused_calls+1, refused_from=? WHERE id=?",
        (address[:64], job_id),
    )
    return address[:64] != last or (count + 1) % 100 == 0


def binding(conn: sqlite3.Connection, job_id: int) -> Binding:
    row = conn.execute(
        "SELECT client_addr, refused_calls, refused_from FROM jobs WHERE id=?", (job_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}", hint="see `slate job list --all`")
    return Binding(row[0], int(row[1]), str(row[2]))


# -- capture ---------------------------------------------------------------------------
def _stamp(created_at: str) -> str:
    """``2026-11-25T16:24:31Z`` → ``20261125T162431Z`` (the form of a version id)."""
    return created_at.replace("-", "").replace(":", "")


def bases(
    conn: sqlite3.Connection, job_id: int, existing: Iterable[str], created_at: str
) -> list[str]:
    """The versions (of those ``existing`` now) a capture job may read and reuse: the
    ones the index held when the job was created, and any whose id (its commit time,
    set by the appliance) is a second or more before that — a version committed in the
    same second and not yet indexed is left out, never let in."""
    taken = {r[0] for r in conn.execute("SELECT version FROM capture_bases WHERE job=?", (job_id,))}
    before = version_key(_stamp(created_at))
    return [v for v in existing if v in taken or version_key(v) < before]


def record_upload(conn: sqlite3.Connection, job_id: int, digest: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO capture_uploads(job, digest) VALUES (?, ?)", (job_id, digest)
    )


def uploaded(conn: sqlite3.Connection, job_id: int, digests: Iterable[str]) -> set[str]:
    """Those of ``digests`` the job uploaded."""
    found = set()
    for digest in dict.fromkeys(digests):
        row = conn.execute(
            "SELECT 1 FROM capture_uploads WHERE job=? AND digest=?", (job_id, digest)
        ).fetchone()
        if row:
            found.add(digest)
    return found


def all_uploaded(conn: sqlite3.Connection, job_id: int) -> set[str]:
    return {r[0] for r in conn.execute("SELECT digest FROM capture_uploads WHERE job=?", (job_id,))}


def in_bases(image: str, versions: list[str], digests: Digests, wanted: Iterable[str]) -> set[str]:
    """Those of ``wanted`` that one of the base ``versions`` names."""
    sets = []
    for version in versions:
        try:
            sets.append(digests(image, version))
        except NotFound:  # deleted since
            continue
    return {d for d in wanted if any(d in s for s in sets)}


def may_name(
    conn: sqlite3.Connection,
    job_id: int,
    image: str,
    versions: list[str],
    digests: Digests,
    wanted: Iterable[str],
) -> set[str]:
    """Those of ``wanted`` a capture job may name: in a base version or uploaded by it."""
    wanted = list(dict.fromkeys(wanted))
    ok = in_bases(image, versions, digests, wanted)
    rest = [d for d in wanted if d not in ok]
    if len(rest) > 1000:  # a commit: one query for all, not one per chunk
        mine = all_uploaded(conn, job_id)
        return ok | {d for d in rest if d in mine}
    return ok | uploaded(conn, job_id, rest)
