"""The SQLite index of the library (tables ``images``/``versions``), kept in line with
the manifest files, which are the truth."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Protocol

from appliance.db import transaction
from appliance.formats.manifest import Manifest


class Store(Protocol):
    """What the index reads of the library (:class:`appliance.store.library.Store`,
    which imports this module: the arrow runs one way)."""

    def db(self) -> sqlite3.Connection: ...
    def images(self) -> list[str]: ...
    def version_ids(self, name: str) -> list[str]: ...
    def load(self, name: str, version: str) -> Manifest: ...
    def stored_size(self, digests: Iterable[str]) -> int: ...


def add(conn: sqlite3.Connection, m: Manifest, stored_size: int) -> None:
    data = sum(d.bytes_of("hash") for d in m.disks)
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO images(name) VALUES (?)", (m.image,))
        conn.execute(
            "INSERT OR REPLACE INTO versions(image, version, created_at, note, source,"
            " disks, logical_size, data_size, stored_size) VALUES (?,?,?,?,?,?,?,?,?)",
            (m.image, m.version, m.created, m.note, m.source, len(m.disks),
             m.logical_size, data, stored_size),
        )  # fmt: skip


def remove(conn: sqlite3.Connection, image: str, version: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM versions WHERE image=? AND version=?", (image, version))
        conn.execute(
            "DELETE FROM images WHERE name=? AND NOT EXISTS (SELECT 1 FROM versions WHERE image=?)",
            (image, image),
        )


def sync(store: Store) -> int:
    """Bring the rows in line with the manifest files; returns the number of fixes
    (a commit or rm interrupted between file and row, or a restored backup)."""
    conn = store.db()
    on_disk = {(n, v) for n in store.images() for v in store.version_ids(n)}
    rows = {(r[0], r[1]) for r in conn.execute("SELECT image, version FROM versions")}
    for image, version in rows - on_disk:
        remove(conn, image, version)
    for image, version in on_disk - rows:
        m = store.load(image, version)
        add(conn, m, store.stored_size(m.digests()))
    return len(rows ^ on_disk)


def rows(store: Store) -> list[sqlite3.Row]:
    sync(store)
    return list(
        store.db().execute(
            "SELECT image, version, created_at, note, source, disks, logical_size,"
            " data_size, stored_size FROM versions ORDER BY image, version"
        )
    )


def refs(conn: sqlite3.Connection) -> list[str]:
    """``image@version`` of every indexed version (of any copy of the database)."""
    rows = conn.execute("SELECT image, version FROM versions ORDER BY image, version")
    return [f"{r[0]}@{r[1]}" for r in rows]


def sizes(conn: sqlite3.Connection, image: str, version: str) -> tuple[int, int] | None:
    """(logical, stored) bytes of ``image@version`` as indexed, or None (no such row)."""
    row = conn.execute(
        "SELECT logical_size, stored_size FROM versions WHERE image=? AND version=?",
        (image, version),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None
