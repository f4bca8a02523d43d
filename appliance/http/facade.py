"""The ``Appliance`` facade: what the HTTP app (and the web console) reach through
``app.extensions["slate"]`` — layout, store, a per-thread database connection, the
inventory and the jobs of that connection."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from appliance import db
from appliance.config import Layout
from appliance.errors import NotFound
from appliance.imagefmt.names import is_version, manifest_relpath
from appliance.inventory import Inventory
from appliance.jobs import Jobs, store_class

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class Appliance:
    def __init__(self, layout: Layout, settings: Any = None) -> None:
        self.layout = layout
        self.settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, str], frozenset[str]] = {}
        self._capture_sessions: dict[int, contextlib.AbstractContextManager[Any]] = {}
        self.store = open_store(layout)
        db.connect(layout.db).close()  # create + migrate once, before any thread

    @property
    def unknown_policy(self) -> str:
        return str(getattr(self.settings, "unknown_policy", "") or "silent")

    def db(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared across threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = db.connect(self.layout.db, migrate=False)
            self._local.conn = conn
        return conn

    @property
    def inventory(self) -> Inventory:
        return Inventory(self.db())

    @property
    def jobs(self) -> Jobs:
        return Jobs(self.db(), self.layout)

    def digests(self, image: str, version: str) -> frozenset[str]:
        """Chunk names of one committed version (cached: versions never change)."""
        key = (image, version)
        with self._lock:
            found = self._digests.get(key)
        if found is None:
            found = frozenset(self.store.digests(image, version))
            with self._lock:
                self._digests[key] = found
        return found

    def versions(self, image: str) -> list[str]:
        folder = self.layout.store / "manifests" / image
        return sorted(p.stem for p in folder.glob("*.json") if is_version(p.stem))

    def capture_session(self, job_id: int) -> None:
        """Hold the store's GC lease for a capture job until :meth:`end_capture`."""
        with self._lock:
            if job_id in self._capture_sessions or not hasattr(self.store, "session"):
                return
            session = self.store.session()
            session.__enter__()
            self._capture_sessions[job_id] = session

    def end_capture(self, job_id: int) -> None:
        with self._lock:
            session = self._capture_sessions.pop(job_id, None)
        if session is not None:
            session.__exit__(None, None, None)

    def close(self) -> None:
        for job_id in list(self._capture_sessions):
            self.end_capture(job_id)


def open_store(layout: Layout) -> Any:
    """The image library (H1's Store); a read-only file view until it exists."""
    store_cls = store_class()
    return FileStore(layout) if store_cls is None else store_cls(layout)


class FileStore:
    """Read-only stand-in for ``appliance.store.Store`` while the library is not built:
    serves the store's files as they are.  Capture uploads need the real Store."""

    def __init__(self, layout: Layout) -> None:
        self.root: Path = layout.store

    def digests(self, name: str, version: str) -> frozenset[str]:
        path = self.root / manifest_relpath(name, version)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(f"no image version {name}@{version}") from None
        found: set[str] = set()
        for disk in data.get("disks", []):
            found.update(c for c in disk.get("chunks", []) if _DIGEST.match(str(c)))
        return frozenset(found)
