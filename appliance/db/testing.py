"""Databases as an older Slate left them, for the upgrade tests (issue 27) — made and read
by the schema's owner, so that no SQL on the tables lives in the tests.  Nothing in the
product calls these."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance import db

# One row in each table a technician would miss after an upgrade (schema 0004 and later).
TABLES = ("rooms", "hosts", "jobs", "users", "audit")
ROWS = """
INSERT INTO rooms(name, note) VALUES ('lab1', 'first floor');
INSERT INTO hosts(mac, name, room) VALUES ('02:00:00:00:00:01', 'pc-01', 'lab1');
INSERT INTO jobs(host, action, image, version, state, token_hash, created_by)
    VALUES ('02:00:00:00:00:01', 'restore', 'win11', '20260101T000000Z', 'done', 'ab12',
            'alice');
INSERT INTO users(name, role, password_hash) VALUES ('alice', 'admin', 'scrypt$x');
INSERT INTO audit(actor, action, target) VALUES ('alice', 'host.add', 'pc-01');
"""


def old_database(path: Path, version: int) -> None:
    """The database at ``path`` as a Slate whose newest migration was ``version`` (4 or
    later) left it: WAL, migrated that far, holding :data:`ROWS`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        if db.apply_migrations(conn, upto=version) != version:
            raise ValueError(f"{version} is not the number of a migration")
        conn.executescript(ROWS)
    finally:
        conn.close()


def rows(conn: sqlite3.Connection, table: str, columns: str = "*") -> list[tuple[object, ...]]:
    """The rows of ``table`` (one of :data:`TABLES`), as tuples."""
    if table not in TABLES:
        raise ValueError(f"{table} is not one of {TABLES}")
    return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY rowid")]  # noqa: S608


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Every row of :data:`TABLES`, every column."""
    return {table: rows(conn, table) for table in TABLES}
