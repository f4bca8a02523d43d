"""The SQLite database (WAL) of one data directory, with ordered schema migrations.

Migrations are the ``NNNN_name.sql`` files beside this module, applied in order, each
once, each in its own transaction.  Never edit a released migration: add a new one.

Upgrades cannot lose the database: before the first pending migration is applied, the
file is copied beside itself with SQLite's backup API (``slate.db.pre-NNNN-<UTC time>``,
``NNNN`` the first migration applied after it; the last :data:`KEEP_BACKUPS` are kept),
and a database whose schema is newer than this code's migrations is refused untouched.
The file is created 0600 (it holds password hashes and the audit log); SQLite gives its
``-wal`` and ``-shm`` files the database's mode.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from appliance.errors import SlateError

BUSY_TIMEOUT_MS = 10_000
DB_MODE = 0o600
KEEP_BACKUPS = 3  # copies made before migrating, per database


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
    _create_private(path)
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
        try:
            apply_migrations(conn)
        except BaseException:
            conn.close()
            raise
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


def _create_private(path: Path) -> None:
    """Create the database file empty at :data:`DB_MODE` if it is absent, so it is
    never, even for an instant, readable by others (sqlite3 would make it 0644)."""
    if str(path) == ":memory:":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_MODE)
    except OSError:
        return  # it exists; or sqlite3.connect reports why not, with the hint
    os.close(fd)


def newest_migration() -> int:
    """The schema version this code migrates a database to."""
    return max((n for n, _, _ in _migrations()), default=0)


def check_not_newer(conn: sqlite3.Connection, current: int) -> None:
    newest = newest_migration()
    if current > newest:
        where = _file_of(conn) or "the database"
        raise SlateError(
            f"{where} has schema version {current}, newer than this Slate knows"
            f" ({newest}): it was written by a newer Slate; it is left as it is",
            hint="install that newer Slate again, or go back to the copy the newer one made"
            " before it migrated the database (slate.db.pre-NNNN-* beside it)",
        )


def apply_migrations(conn: sqlite3.Connection, *, upto: int | None = None) -> int:
    """Apply every migration not yet applied (or those up to ``upto``); return the
    resulting schema version.  A database newer than the code is refused; one that has
    migrations to apply is copied beside itself first (:func:`backup_before`)."""
    current = schema_version(conn)
    check_not_newer(conn, current)
    pending = [m for m in _migrations() if m[0] > current and (upto is None or m[0] <= upto)]
    if pending and current > 0:
        backup_before(conn, pending[0][0])
    for number, name, sql in pending:
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


def _file_of(conn: sqlite3.Connection) -> str:
    """The file of the connection's main database ("" in memory)."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return str(row[2] or "")
    return ""


def backup_before(conn: sqlite3.Connection, number: int) -> Path | None:
    """Copy the database (SQLite backup API, consistent while others write) to
    ``<file>.pre-<number>-<UTC time>`` at 0600, unless it has been migrated past
    ``number - 1`` meanwhile or is in memory; keep the last :data:`KEEP_BACKUPS`."""
    file = _file_of(conn)
    if not file:
        return None
    path = Path(file)
    conn.execute("BEGIN IMMEDIATE")  # no migration (nor other writer) while it is copied
    try:
        if schema_version(conn) >= number:
            return None  # another process migrated while this one waited
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = path.with_name(f"{path.name}.pre-{number:04d}-{stamp}")
        tmp = path.with_name(f".{dest.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, DB_MODE)
        os.close(fd)
        try:
            # A connection holding the write lock cannot be a backup's source (SQLite
            # answers LOCKED): a second one reads, in WAL mode, what is committed.
            source = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                target.close()
                source.close()
            with contextlib.suppress(FileExistsError):  # another process's copy stays
                os.link(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    except sqlite3.Error as exc:
        raise SlateError(
            f"cannot copy the database {path} before migrating it: {exc}",
            hint="free some space in the data directory; nothing was migrated",
        ) from exc
    finally:
        conn.execute("COMMIT")
    prune_backups(path)
    return dest


def backups(path: Path) -> list[Path]:
    """The copies made before migrating ``path``, oldest first."""
    found = [p for p in path.parent.glob(f"{path.name}.pre-*") if not p.name.endswith(".tmp")]
    return sorted(found, key=lambda p: (p.name.rsplit("-", 1)[-1], p.name))


def prune_backups(path: Path, keep: int = KEEP_BACKUPS) -> None:
    for old in backups(path)[:-keep]:
        old.unlink(missing_ok=True)


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
