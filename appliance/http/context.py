"""The ``Appliance`` facade: what the HTTP app (and the web console) reach through
``app.extensions["slate"]`` — layout, store, a per-thread database connection, the
inventory and the jobs of that connection."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from appliance import db
from appliance.config import Layout
from appliance.jobs import Jobs, queries
from appliance.jobs.states import FINAL
from appliance.machines import Inventory
from appliance.store import Session, Store


class Appliance:
    def __init__(self, layout: Layout, settings: Any = None) -> None:
        self.layout = layout
        self.settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, str], frozenset[str]] = {}
        self._capture_sessions: dict[int, Session] = {}
        self._roomcast: Any = None
        self.store = Store(layout)
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
        return list(self.store.version_ids(image))

    def capture_session(self, job_id: int) -> Session:
        """The store session of a capture job: it pins the job's chunks against gc from
        its first upload until commit or the job's end (see appliance.store.sessions)."""
        with self._lock:
            session = self._capture_sessions.get(job_id)
        if session is None:
            self.reap_captures()
            with self._lock:
                session = self._capture_sessions.get(job_id)
                if session is None:
                    session = self._capture_sessions[job_id] = Session(self.store, candidate=True)
        return session

    def reap_captures(self) -> None:
        """End the sessions of capture jobs that ended elsewhere (expired by housekeeping,
        cancelled in the console, a client killed mid-upload): their pins go, and the
        chunks only they added are dropped, so gc can reclaim what they left."""
        with self._lock:
            ids = list(self._capture_sessions)
        for job_id in ids:  # a handful: the captures uploading right now
            state = queries.state_of(self.db(), job_id)
            if state is None or state in FINAL:
                self.end_capture(job_id, ok=state == "done")

    def end_capture(self, job_id: int, *, ok: bool = True) -> None:
        """Release a capture's pins; when it did not commit, drop the chunks it added."""
        with self._lock:
            session = self._capture_sessions.pop(job_id, None)
        if session is not None:
            try:
                if not ok:
                    session.abort()
            finally:
                session.close()

    @property
    def roomcast(self) -> Any:
        """The room sessions (:class:`appliance.roomcast.Roomcast`), made at first use."""
        with self._lock:
            if self._roomcast is None:
                from appliance.roomcast import DEFAULT_GROUP, DEFAULT_PORT, Roomcast
                from appliance.roomcast.priority import DEFAULT_NICE

                s = self.settings
                self._roomcast = Roomcast(
                    str(getattr(s, "address", "") or ""),  # "": no multicast
                    self.store.chunk_path,
                    self.db,
                    group=str(getattr(s, "multicast_group", "") or DEFAULT_GROUP),
                    port=int(getattr(s, "multicast_port", 0) or DEFAULT_PORT),
                    rate=int(getattr(s, "multicast_rate", 0) or 0),
                    link=int(getattr(s, "link_rate", 0) or 0),
                    status_dir=self.layout.home / "roomcast",
                    query_interval=float(getattr(s, "igmp_query_interval", 60.0)),
                    nice=int(getattr(s, "multicast_nice", DEFAULT_NICE)),
                )
            return self._roomcast

    def chunk_pace(self) -> Any:
        """What each block of a chunk served by HTTP must pass while room sessions run
        (the link less their rates), else None: chunks go unpaced, by sendfile."""
        with self._lock:
            roomcast = self._roomcast  # none made yet: no session runs
        return None if roomcast is None else roomcast.http_pace()

    def close(self) -> None:
        if self._roomcast is not None:
            self._roomcast.stop()
        # Release pins only: a capture interrupted by a restart resumes (its client asks
        # what is missing); gc reclaims the chunks if it never commits.
        for job_id in list(self._capture_sessions):
            self.end_capture(job_id)
