"""Shared fixtures and helpers of the web console tests (imported by test_webui_*.py).

The app is the real appliance app (``appliance.http.create_app``) with the console
plugged in through its ``slate.http`` entry point, on a fresh data directory."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from appliance import db
from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.manifest import ZERO, Chunk, Disk, Manifest, Partition
from appliance.http import create_app

PW = "correct horse battery"
ROLE_USERS = {"admin": "ada", "technician": "tom", "viewer": "vic"}
CHUNK = 64 * 1024
MAC1, MAC2, MAC3 = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"


def make_app(home: Path) -> Flask:
    app = create_app(Layout(home))
    assert "dashboard" in app.blueprints, "the console (webui:init_app) did not load"
    app.config["TESTING"] = True
    app.config["SLATE_WOL_TARGET"] = "127.0.0.1:9"
    conn = db.connect(home / "slate.db")
    # Rows with a hash made once: scrypt is slow on purpose (users.add is tested elsewhere).
    conn.executemany(
        "INSERT INTO users(name, role, password_hash) VALUES (?, ?, ?)",
        [(name, role, _pw_hash()) for role, name in ROLE_USERS.items()],
    )
    conn.close()
    return app


@functools.cache
def _pw_hash() -> str:
    return generate_password_hash(PW, method="scrypt")


def slate(app: Flask) -> Any:
    return app.extensions["slate"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


class Console:
    """A logged-in browser session: a test client that knows its CSRF token."""

    def __init__(self, client: FlaskClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.client.post(url, data={**(data or {}), "csrf_token": self.csrf}, **kw)

    def api(self, method: str, url: str, json: Any = None) -> Any:
        return self.client.open(url, method=method, json=json, headers={"X-CSRF-Token": self.csrf})


def login(app: Flask, name: str, password: str = PW) -> Console:
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"name": name, "password": password, "csrf_token": token})
    assert resp.status_code == 302, resp.text
    return Console(client, csrf_of(client.get("/account").text))


def add_image(app: Flask, name: str = "win11", seeds: tuple[int, ...] = (1, 2, 3)) -> Manifest:
    """A real committed image version (chunks through the Store, then the manifest)."""
    store = slate(app).store
    entries: list[Chunk] = []
    for seed in seeds:
        data = bytes([seed]) * CHUNK
        digest = hash_chunk(data)
        store.put_chunk_frame(digest, compress_chunk(data))
        entries.append(Chunk("hash", digest))
    entries.append(ZERO)
    part = Partition(number=1, start=CHUNK, size=CHUNK * 2, type="0x83", fs="ext4")
    disk = Disk(
        index=0,
        size=CHUNK * len(entries),
        table="mbr",
        partitions=(part,),
        chunk_size=CHUNK,
        chunks=tuple(entries),
    )
    manifest = Manifest(
        image=name,
        version=store.new_version_id(name),
        created="2026-11-25T10:00:00Z",
        note="fresh install",
        source="pc-ref",
        disks=(disk,),
    )
    return store.commit(manifest)  # type: ignore[no-any-return]


def add_host(app: Flask, mac: str, name: str, room: str | None = "lab-a") -> Any:
    with app.app_context():
        return slate(app).inventory.add_host(mac, name, actor="test", room=room)


def audit_actions(app: Flask) -> list[tuple[str, str]]:
    with app.app_context():
        rows = slate(app).db().execute("SELECT actor, action FROM audit ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


@pytest.fixture
def app(home: Path) -> Iterator[Flask]:
    yield make_app(home)


@pytest.fixture
def admin(app: Flask) -> Console:
    return login(app, "ada")


@pytest.fixture
def tech(app: Flask) -> Console:
    return login(app, "tom")


@pytest.fixture
def viewer(app: Flask) -> Console:
    return login(app, "vic")
