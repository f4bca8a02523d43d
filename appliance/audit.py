"""The audit log: who started, cancelled, deleted or changed what."""

from __future__ import annotations

import getpass
import sqlite3


def cli_actor() -> str:
    """The actor recorded for commands typed at the server's shell."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:?"


def record(
    conn: sqlite3.Connection, actor: str, action: str, target: str = "", detail: str = ""
) -> None:
    conn.execute(
        "INSERT INTO audit(actor, action, target, detail) VALUES (?, ?, ?, ?)",
        (actor, action, target, detail),
    )


def recent(conn: sqlite3.Connection, limit: int = 100) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
