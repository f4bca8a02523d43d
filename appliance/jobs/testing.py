"""Job rows staged and read as they are, for the tests and the lab — by the table's
owner, so that no SQL on ``jobs`` lives outside this package (issue 26).  Nothing in
the product calls these: a job's news comes from :class:`~appliance.jobs.Jobs`.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

STAMPS = ("created_at", "updated_at", "started_at", "finished_at")


def columns(conn: sqlite3.Connection) -> tuple[str, ...]:
    return tuple(r[1] for r in conn.execute("PRAGMA table_info(jobs)"))


def set_stamps(conn: sqlite3.Connection, job_id: int, **stamps: str) -> None:
    """Move a job's time stamps (``updated_at="2000-01-01T00:00:00Z"``, ...)."""
    for name, value in stamps.items():
        if name not in STAMPS:
            raise ValueError(f"{name} is not one of a job's time stamps {STAMPS}")
        conn.execute(f"UPDATE jobs SET {name}=? WHERE id=?", (value, job_id))  # noqa: S608


def age(conn: sqlite3.Connection, job_id: int, seconds: float) -> None:
    """Pretend the job's last news is ``seconds`` old."""
    then = datetime.now(UTC).timestamp() - seconds
    set_stamps(conn, job_id, updated_at=datetime.fromtimestamp(then, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip


def rows(
    conn: sqlite3.Connection, *names: str, host: str | None = None, job_id: int | None = None
) -> list[sqlite3.Row]:
    """The rows as stored (every column, or ``names``), in id order, of one host's jobs,
    one job, or all."""
    known = columns(conn)
    wrong = [n for n in names if n not in known]
    if wrong:
        raise ValueError(f"jobs has no column {', '.join(wrong)}")
    what = ", ".join(names) if names else "*"
    where: list[str] = []
    args: list[object] = []
    if host is not None:
        where.append("host=?")
        args.append(host)
    if job_id is not None:
        where.append("id=?")
        args.append(job_id)
    sql = f"SELECT {what} FROM jobs"  # noqa: S608 (names checked against the table)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return conn.execute(sql + " ORDER BY id", args).fetchall()


def insert_plain(
    conn: sqlite3.Connection, host: str, action: str, image: str, created_at: str
) -> int:
    """A job row with only the columns every schema has had (a migration's test stages
    the rows of an old database with it); its token hash is a placeholder."""
    cur = conn.execute(
        "INSERT INTO jobs(host, action, image, token_hash, created_at) VALUES (?, ?, ?, 'x', ?)",
        (host, action, image, created_at),
    )
    return int(cur.lastrowid or 0)
