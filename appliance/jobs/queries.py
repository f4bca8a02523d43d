"""The reads on ``jobs`` that other modules need: plain functions over a connection.

Every SQL statement that reads the ``jobs`` table lives in :mod:`appliance.jobs` (this
module, :class:`~appliance.jobs.service.Jobs`, :mod:`appliance.jobs.scope`); lists of
states come from :mod:`appliance.jobs.states`.  Functions returning rows return what the
connection's row factory makes (:class:`sqlite3.Row` on the appliance's connections).
"""

from __future__ import annotations

import sqlite3

from appliance.jobs.states import ACTIVE, FINAL, STARTED, UNWRITTEN, sql_in

_ACTIVE = sql_in(ACTIVE)
_FINAL = sql_in(FINAL)
_STARTED = sql_in(STARTED)
_UNWRITTEN = sql_in(UNWRITTEN)
_NOT_UNICAST = "COALESCE(json_extract(options, '$.transport'), 'auto') != 'unicast'"


# -- images --------------------------------------------------------------------------------
def versions_in_use(conn: sqlite3.Connection) -> frozenset[tuple[str, str]]:
    """(image, version) pairs that an active job needs: they must not be deleted."""
    rows = conn.execute(
        f"SELECT DISTINCT image, version FROM jobs WHERE state IN {_ACTIVE}"  # noqa: S608 (fixed states)
        " AND image IS NOT NULL AND version IS NOT NULL"
    ).fetchall()
    return frozenset((r[0], r[1]) for r in rows)


def images_being_captured(conn: sqlite3.Connection) -> frozenset[str]:
    """Image names an active capture job will add a version to."""
    rows = conn.execute(
        f"SELECT DISTINCT image FROM jobs WHERE action='capture' AND state IN {_ACTIVE}"  # noqa: S608
    ).fetchall()
    return frozenset(r[0] for r in rows)


def images_uploading(conn: sqlite3.Connection) -> frozenset[str]:
    """Images a started capture (its machine booted, maybe uploading) adds a version to."""
    rows = conn.execute(
        f"SELECT DISTINCT image FROM jobs WHERE action='capture' AND state IN {_STARTED}"  # noqa: S608
    ).fetchall()
    return frozenset(r[0] for r in rows)


def last_capture_finished(conn: sqlite3.Connection, image: str) -> str | None:
    """When the newest capture of ``image`` that is done finished, or None."""
    row = conn.execute(
        "SELECT MAX(finished_at) FROM jobs WHERE action='capture' AND state='done' AND image=?",
        (image,),
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


# -- one job, one host -----------------------------------------------------------------
def state_of(conn: sqlite3.Connection, job_id: int) -> str | None:
    """The state of job ``job_id``, or None when there is no such job."""
    row = conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
    return None if row is None else str(row[0])


def active_on_host(conn: sqlite3.Connection, mac: str) -> sqlite3.Row | None:
    """``id`` and ``state`` of an active job of host ``mac``, or None."""
    row: sqlite3.Row | None = conn.execute(
        f"SELECT id, state FROM jobs WHERE host=? AND state IN {_ACTIVE}",  # noqa: S608
        (mac,),
    ).fetchone()
    return row


def last_of_host(conn: sqlite3.Connection, mac: str) -> sqlite3.Row | None:
    """``id``, ``action``, ``state`` and ``options`` (JSON) of host ``mac``'s newest job."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT id, action, state, options FROM jobs WHERE host=? ORDER BY id DESC LIMIT 1",
        (mac,),
    ).fetchone()
    return row


def of_host(conn: sqlite3.Connection, mac: str) -> list[sqlite3.Row]:
    """Every column of every job of host ``mac``, oldest first."""
    rows: list[sqlite3.Row] = conn.execute(
        "SELECT * FROM jobs WHERE host=? ORDER BY id", (mac,)
    ).fetchall()
    return rows


def scheduled(conn: sqlite3.Connection, mac: str, schedule: int, occurrence: str) -> int | None:
    """The job schedule ``schedule`` made for host ``mac`` at ``occurrence``, or None."""
    row = conn.execute(
        "SELECT id FROM jobs WHERE host=? AND json_extract(options, '$.schedule')=?"
        " AND json_extract(options, '$.occurrence')=?",
        (mac, schedule, occurrence),
    ).fetchone()
    return None if row is None else int(row[0])


def recent_ids(
    conn: sqlite3.Connection, limit: int, *, ended: bool = False, host: str | None = None
) -> list[int]:
    """Newest job ids first, at most ``limit``: only ended ones, only host ``host``'s."""
    where: list[str] = []
    args: list[object] = []
    if ended:
        where.append(f"state NOT IN {_ACTIVE}")
    if host:
        where.append("host = ?")
        args.append(host)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT id FROM jobs{clause} ORDER BY id DESC LIMIT ?"  # noqa: S608 (fixed clauses, bound values)
    return [int(r[0]) for r in conn.execute(sql, [*args, limit]).fetchall()]


def count_by_state(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(state, number of jobs in it) for each state some job is in."""
    rows = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    return [(str(s), int(n)) for s, n in rows]


# -- rooms -----------------------------------------------------------------------------
def unfinished_in_room(conn: sqlite3.Connection, room: str) -> int:
    """How many jobs of the hosts of ``room`` have not reached a final state."""
    row = conn.execute(
        "SELECT COUNT(*) FROM jobs j JOIN hosts h ON h.mac=j.host"  # noqa: S608 (fixed states)
        f" WHERE h.room=? AND j.state NOT IN {_FINAL}",
        (room,),
    ).fetchone()
    return int(row[0])


def last_of_room(conn: sqlite3.Connection, room: str) -> list[sqlite3.Row]:
    """Host name, then id, state and reason of its newest job, for each seat of ``room``
    that has a job, by host name."""
    rows: list[sqlite3.Row] = conn.execute(
        "SELECT h.name, j.id, j.state, j.reason FROM hosts h JOIN jobs j ON j.id ="
        " (SELECT MAX(id) FROM jobs WHERE host=h.mac) WHERE h.room=? ORDER BY h.name",
        (room,),
    ).fetchall()
    return rows


def multicast_restores(conn: sqlite3.Connection, image: str, version: str) -> int:
    """How many active restores of ``image@version`` do not ask for HTTP (unicast)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM jobs WHERE action='restore' AND image=? AND version=?"  # noqa: S608
        f" AND state IN {_ACTIVE} AND {_NOT_UNICAST}",
        (image, version),
    ).fetchone()
    return int(row[0])


def session_joiners(conn: sqlite3.Connection, image: str, version: str) -> frozenset[int]:
    """Ids of the restores of ``image@version`` due now, not unicast, chunks unwritten."""
    rows = conn.execute(
        "SELECT id FROM jobs WHERE action='restore' AND image=? AND version=?"  # noqa: S608
        f" AND state IN {_UNWRITTEN}"
        " AND (not_before IS NULL OR not_before <= strftime('%Y-%m-%dT%H:%M:%SZ','now'))"
        f" AND {_NOT_UNICAST}",
        (image, version),
    ).fetchall()
    return frozenset(int(r[0]) for r in rows)


# -- what the client reported, by host -------------------------------------------------
# disk_health (appliance.machines.facts), power_polls and power_requests
# (appliance.machines.power) are keyed by job: finding a host's goes through
# ``jobs.host``, and SQL on ``jobs`` lives only in this package.  So these joins stay
# here; facts.py and power.py call them.
def last_disk_health_job(conn: sqlite3.Connection, mac: str) -> int | None:
    """The newest job of host ``mac`` that reported disk health, or None."""
    row = conn.execute(
        "SELECT MAX(d.job) FROM disk_health d JOIN jobs j ON j.id=d.job WHERE j.host=?", (mac,)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def last_power_poll(conn: sqlite3.Connection, mac: str) -> tuple[int, str] | None:
    """(job, when) of the newest job of host ``mac`` whose client polled for power."""
    row = conn.execute(
        "SELECT p.job, p.at FROM power_polls p JOIN jobs j ON j.id=p.job WHERE j.host=?"
        " ORDER BY p.job DESC LIMIT 1",
        (mac,),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def last_power_request(conn: sqlite3.Connection, mac: str) -> sqlite3.Row | None:
    """job, command, actor, at, taken_at of the newest power request for host ``mac``."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT r.job, r.command, r.actor, r.at, r.taken_at FROM power_requests r"
        " JOIN jobs j ON j.id=r.job WHERE j.host=? ORDER BY r.at DESC LIMIT 1",
        (mac,),
    ).fetchone()
    return row
