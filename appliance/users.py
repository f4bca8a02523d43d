"""People who use the web console and the JSON API: roles, passwords, API tokens.

Passwords are hashed with werkzeug's scrypt (Werkzeug is already a Flask dependency,
so no new package; scrypt is memory-hard and salted per hash).  API tokens are random
secrets shown once; only their sha256 is stored, so a leaked database does not leak
usable tokens.  Every change is written to the audit log.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from appliance import audit
from appliance.db import transaction
from appliance.errors import Conflict, NotFound, UsageError

ROLES = ("admin", "technician", "viewer")

# What each role may do.  "view" = read everything except users and the audit log.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"view"}),
    # image.promote: let NAME, rooms and rules resolve to a captured version (and keep it)
    "technician": frozenset({"view", "job.start", "host.edit", "image.promote"}),
    "admin": frozenset(
        {
            "view",
            "job.start",
            "host.edit",
            "host.delete",
            "image.edit",
            "image.promote",
            "hook.edit",  # post-restore hooks and kept partitions (issue 13)
            "user.admin",
            "audit",
        }
    ),
}

MIN_PASSWORD = 10
TOKEN_PREFIX = "slt_"  # noqa: S105 (the prefix of API tokens, not a token)
_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
# Hash used when the user does not exist, so a wrong name costs as long as a wrong password.


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against for unknown names (equal timing); made on first use, not at
    import, so that every `slate` command does not pay one scrypt."""
    return generate_password_hash("not-a-real-password", method="scrypt")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    epoch: int = 0

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UsageError(
            f"user name {name!r} is not valid",
            hint="use 1-32 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter",
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint="roles are: " + ", ".join(ROLES))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UsageError(
            f"the password is too short ({len(password)} characters)",
            hint=f"use at least {MIN_PASSWORD} characters; a few random words work well",
        )


def _row_user(row: sqlite3.Row) -> User:
    return User(name=row["name"], role=row["role"], epoch=int(row["epoch"]))


def get(conn: sqlite3.Connection, name: str) -> User:
    row = conn.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no user named {name!r}", hint="`slate user list` shows the users")
    return _row_user(row)


def list_users(conn: sqlite3.Connection) -> list[User]:
    rows = conn.execute("SELECT * FROM users ORDER BY name").fetchall()
    return [_row_user(r) for r in rows]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])


def add(conn: sqlite3.Connection, name: str, role: str, password: str, actor: str) -> User:
    _check_name(name)
    _check_role(role)
    _check_password(password)
    with transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
            raise Conflict(
                f"a user named {name!r} already exists",
                hint=f"`slate user passwd {name}` changes the password",
            )
        conn.execute(
            "INSERT INTO users(name, role, password_hash) VALUES (?, ?, ?)",
            (name, role, generate_password_hash(password, method="scrypt")),
        )
        audit.record(conn, actor, "user.add", name, f"role={role}")
    return get(conn, name)


def set_password(conn: sqlite3.Connection, name: str, password: str, actor: str) -> None:
    _check_password(password)
    get(conn, name)
    with transaction(conn):
        conn.execute(
            "UPDATE users SET password_hash=?, epoch=epoch+1 WHERE name=?",
            (generate_password_hash(password, method="scrypt"), name),
        )
        audit.record(conn, actor, "user.passwd", name)


def set_role(conn: sqlite3.Connection, name: str, role: str, actor: str) -> None:
    _check_role(role)
    user = get(conn, name)
    with transaction(conn):
        if user.role == "admin" and role != "admin":
            _refuse_last_admin(conn, name)
        conn.execute("UPDATE users SET role=?, epoch=epoch+1 WHERE name=?", (role, name))
        audit.record(conn, actor, "user.role", name, f"role={role}")


def remove(conn: sqlite3.Connection, name: str, actor: str) -> None:
    user = get(conn, name)
    with transaction(conn):
        if user.role == "admin":
            _refuse_last_admin(conn, name)
        conn.execute("DELETE FROM users WHERE name=?", (name,))
        audit.record(conn, actor, "user.rm", name)


def _refuse_last_admin(conn: sqlite3.Connection, name: str) -> None:
    admins = conn.execute(
        "SELECT COUNT(*) FROM users WHERE role='admin' AND name<>?", (name,)
    ).fetchone()[0]
    if not admins:
        raise Conflict(
            f"{name!r} is the last admin",
            hint="add another admin first (`slate user add NAME --role admin`)",
        )


def authenticate(conn: sqlite3.Connection, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else None (same cost either way)."""
    row = conn.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
    stored = row["password_hash"] if row is not None else _dummy_hash()
    ok = check_password_hash(stored, password)
    return _row_user(row) if row is not None and ok else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(conn: sqlite3.Connection, name: str, actor: str, label: str = "") -> str:
    """Create an API token for ``name``; the token itself is returned once, never stored."""
    get(conn, name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO api_tokens(user, token_hash, label) VALUES (?, ?, ?)",
            (name, _token_hash(token), label),
        )
        audit.record(conn, actor, "user.token", name, f"token id {cur.lastrowid} {label}".strip())
    return token


def tokens(conn: sqlite3.Connection, name: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, label, created_at, last_used FROM api_tokens WHERE user=? ORDER BY id",
        (name,),
    ).fetchall()


def revoke_tokens(conn: sqlite3.Connection, name: str, actor: str) -> int:
    get(conn, name)
    with transaction(conn):
        n = conn.execute("DELETE FROM api_tokens WHERE user=?", (name,)).rowcount
        audit.record(conn, actor, "user.revoke", name, f"{n} token(s)")
    return int(n)


def user_for_token(conn: sqlite3.Connection, token: str) -> User | None:
    """The owner of an API token, or None.  Job tokens of restore clients never match."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = conn.execute(
        "SELECT u.*, t.id AS token_id FROM api_tokens t JOIN users u ON u.name = t.user"
        " WHERE t.token_hash=?",
        (_token_hash(token),),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE api_tokens SET last_used=strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id=?",
        (row["token_id"],),
    )
    return _row_user(row)
