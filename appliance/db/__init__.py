"""The SQLite database (WAL) of one data directory, with ordered schema migrations.

Migrations are the ``NNNN_name.sql`` files beside this module, applied in order, each
once, each in its own transaction.  Never edit a released migration: add a new one.
"""

from __future__ import annotations

import sqlite3
import threading
from importlib import resources
from pathlib import Path

from appliance.errors import SlateError

BUSY_TIMEOUT_MS = 10_000


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("appliance.db.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql") or not name[:4].isdigit():
            continue
        found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(numbers) != len(set(numbers)):
        raise SlateError(f"two schema migrations share a number: {sorted(numbers)}")
    return found


def connect(path: Path, *, migrate: bool = True) -> sqlite3.Connection:
    """Open the database at ``path``; create and migrate it as needed.

    Connections are in autocommit mode (``isolation_level=None``); use
    :func:`transaction` for multi-statement changes.
    """
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise SlateError(
            f"cannot open the database {path}: {exc}",
            hint="check that the data directory (--home / SLATE_HOME) is writable",
        ) from exc
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if migrate:
        apply_migrations(conn)
    return conn


class ThreadConnections:
    """One connection per thread to the database at ``path``, for everything in the
    process that shares it (``slate serve``'s services, the HTTP context, the store's
    index): call it for this thread's connection (sqlite3 connections are not shared
    across threads).  The database is created and migrated once, by :meth:`prepare` or
    at the first call, before any connection is handed out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ready = False

    def prepare(self) -> None:
        """Create and migrate the database now (once), before any thread asks."""
        with self._lock:
            if not self._ready:
                connect(self.path).close()
                self._ready = True

    def __call__(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.prepare()
            conn = self._local.conn = connect(self.path, migrate=False)
        return conn


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " number INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
    )
    row = conn.execute("SELECT MAX(number) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Apply every migration not yet applied; return the resulting schema version."""
    current = schema_version(conn)
    for number, name, sql in _migrations():
        if number <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE number=?", (number,)
            ).fetchone()
            if not done:
                for statement in _split(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations(number, name) VALUES (?, ?)", (number, name)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = number
    return current


def _split(sql: str) -> list[str]:
    """Split a migration into statements (``sqlite3.complete_statement`` aware)."""
    statements, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


class transaction:
    """``with transaction(conn):`` — BEGIN IMMEDIATE … COMMIT, ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
