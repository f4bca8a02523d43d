"""Upgrades cannot lose the database or the library: a copy of ``slate.db`` before any
migration is applied (the last 3 kept), a database or store newer than the code refused
untouched (issue 27)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from appliance import db
from appliance.config import Layout
from appliance.db.testing import dump, old_database, rows
from appliance.errors import IntegrityError, SlateError
from appliance.settings import Settings
from appliance.store import Store
from appliance.store.library import STORE_FORMAT


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_migrating_copies_the_database_first(tmp_path: Path) -> None:
    path = tmp_path / "slate.db"
    old_database(path, 19)
    conn = db.connect(path)
    assert db.schema_version(conn) == db.newest_migration()
    conn.close()
    [copy] = db.backups(path)
    assert copy.name.startswith("slate.db.pre-0020-")
    assert copy.stat().st_mode & 0o777 == 0o600
    old = sqlite3.connect(copy)
    assert db.schema_version(old) == 19
    assert rows(old, "hosts", "name") == [("pc-01",)]
    assert old.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    old.close()
    # Opening it again: nothing to apply, no second copy.
    db.connect(path).close()
    assert db.backups(path) == [copy]


def test_a_new_database_is_not_copied(tmp_path: Path) -> None:
    db.connect(tmp_path / "slate.db").close()
    assert db.backups(tmp_path / "slate.db") == []
    assert sorted(p.name for p in tmp_path.iterdir() if "pre-" in p.name) == []


def test_the_last_three_copies_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "slate.db"
    for stamp in ("20250101T000000Z", "20250201T000000Z", "20250301T000000Z"):
        (tmp_path / f"slate.db.pre-0015-{stamp}").write_bytes(b"old")
    old_database(path, 19)
    db.connect(path).close()
    names = [p.name for p in db.backups(path)]
    assert names[:2] == ["slate.db.pre-0015-20250201T000000Z", "slate.db.pre-0015-20250301T000000Z"]
    assert len(names) == 3 and names[2].startswith("slate.db.pre-0020-")


def test_a_database_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "slate.db"
    conn = db.connect(path)
    newest = db.newest_migration()
    conn.execute("INSERT INTO schema_migrations(number, name) VALUES (?, 'future.sql')",
                 (newest + 1,))  # fmt: skip
    conn.close()
    before = digest(path)
    with pytest.raises(SlateError) as caught:
        db.connect(path)
    assert caught.value.message == (
        f"{path} has schema version {newest + 1}, newer than this Slate knows ({newest}):"
        " it was written by a newer Slate; it is left as it is"
    )
    assert caught.value.hint is not None and "install that newer Slate again" in caught.value.hint
    assert digest(path) == before
    assert db.backups(path) == []


def test_serve_refuses_a_newer_database_before_anything(home: Path) -> None:
    from appliance.server import Appliance

    layout = Layout(home)
    conn = db.connect(layout.db)
    conn.execute("INSERT INTO schema_migrations(number, name) VALUES (9999, 'future.sql')")
    conn.close()
    with pytest.raises(SlateError, match="schema version 9999, newer than this Slate"):
        Appliance(layout, Settings(interface="lo", address="127.0.0.1", prefix=8))


def test_the_store_records_its_format_and_refuses_a_newer_one(home: Path) -> None:
    layout = Layout(home)
    Store(layout)
    assert (layout.store / "format").read_text() == f"{STORE_FORMAT}\n"
    (layout.store / "format").write_text(f"{STORE_FORMAT + 1}\n")
    with pytest.raises(SlateError) as caught:
        Store(layout)
    assert caught.value.message == (
        f"the image library {layout.store} has format {STORE_FORMAT + 1}, newer than this"
        f" Slate knows ({STORE_FORMAT}): it was written by a newer Slate; it is left as it is"
    )
    (layout.store / "format").write_text("banana\n")
    with pytest.raises(IntegrityError, match="does not hold a store format number"):
        Store(layout)


def test_a_store_made_before_the_format_file_is_format_1(home: Path) -> None:
    layout = Layout(home)
    (layout.store / "manifests").mkdir(parents=True)
    Store(layout)
    assert (layout.store / "format").read_text() == "1\n"


def test_serve_refuses_a_newer_store_before_migrating(home: Path) -> None:
    from appliance.server import Appliance

    layout = Layout(home)
    old_database(layout.db, 19)
    layout.store.mkdir()
    (layout.store / "format").write_text("99\n")
    with pytest.raises(SlateError, match="has format 99, newer than this Slate"):
        Appliance(layout, Settings(interface="lo", address="127.0.0.1", prefix=8))
    assert db.backups(layout.db) == []
    assert db.schema_version(sqlite3.connect(layout.db)) == 19


def test_an_old_database_is_upgraded_with_every_row(tmp_path: Path) -> None:
    """A database of the oldest schema with users (0004): rooms, hosts, jobs, users and
    audit rows, upgraded in place by the current code."""
    path = tmp_path / "slate.db"
    old_database(path, 4)
    before = dump(sqlite3.connect(path))

    conn = db.connect(path)
    assert db.schema_version(conn) == db.newest_migration()
    assert rows(conn, "hosts", "name, room") == [("pc-01", "lab1")]
    assert rows(conn, "rooms", "note") == [("first floor",)]
    assert rows(conn, "jobs", "host, image, state, created_by") == [
        ("02:00:00:00:00:01", "win11", "done", "alice")]  # fmt: skip
    assert rows(conn, "users", "name, role, password_hash") == [
        ("alice", "admin", "scrypt$x")]  # fmt: skip
    assert rows(conn, "audit", "actor, action, target") == [
        ("alice", "host.add", "pc-01")]  # fmt: skip
    conn.close()
    [copy] = db.backups(path)
    assert copy.name.startswith("slate.db.pre-0005-")
    old = sqlite3.connect(copy)
    assert db.schema_version(old) == 4
    assert dump(old) == before
