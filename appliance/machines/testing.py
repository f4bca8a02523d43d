"""Host rows read as they are, for the tests — by the tables' owner, so that no SQL on
``hosts`` lives outside this package (issue 26).  Nothing in the product calls these."""

from __future__ import annotations

import sqlite3


def hosts(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """Every column of every host, in MAC order."""
    return [tuple(r) for r in conn.execute("SELECT * FROM hosts ORDER BY mac")]


def insert_plain(conn: sqlite3.Connection, mac: str, name: str) -> None:
    """A host row with only the columns every schema has had (a migration's test stages
    the rows of an old database with it)."""
    conn.execute("INSERT INTO hosts(mac, name) VALUES (?, ?)", (mac, name))
