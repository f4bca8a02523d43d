"""``HttpContext``: what the HTTP app (and the web console) reach through
``app.extensions["slate"]`` — settings, layout, store, this thread's database
connection, the inventory and the jobs of that connection, the room sessions.

:class:`appliance.server.Appliance` (``slate serve``) is the composition root: it makes
the context with the process's one per-thread connection provider and the multicast
service it starts and stops.  Tests and ``python -m appliance.http`` build the HTTP app
without a server: the context then makes its own connections and, at first use, its own
:class:`~appliance.roomcast.Roomcast`, which :meth:`HttpContext.close` stops.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import db
from appliance.config import Layout
from appliance.district.readthrough import ReadThrough
from appliance.errors import NotFound
from appliance.formats.manifest import Manifest
from appliance.jobs import Jobs, queries
from appliance.jobs.states import FINAL
from appliance.machines import Inventory
from appliance.settings import Settings
from appliance.store import Session, Store

if TYPE_CHECKING:
    from appliance.roomcast import Roomcast


class HttpContext:
    """The services the HTTP layer uses, handed in by the composition root.

    ``connections``: this thread's connection (:class:`appliance.db.ThreadConnections`,
    shared with the store and every other service); ``store``: the image library on
    those connections; ``roomcast``: the multicast service the root started.  Each may
    be None when the HTTP app is built standalone (tests,
    ``python -m appliance.http``): the context then makes its own — the Roomcast lazily,
    at first use, and stops it at :meth:`close` (one the root handed in is the root's to
    stop)."""

    def __init__(
        self,
        layout: Layout,
        settings: Settings | None = None,
        *,
        connections: db.ThreadConnections | None = None,
        store: Store | None = None,
        roomcast: Roomcast | None = None,
        readthrough: ReadThrough | None = None,
    ) -> None:
        self.layout = layout
        self.settings = settings if settings is not None else Settings()
        self.db = connections if connections is not None else db.ThreadConnections(layout.db)
        self.db.prepare()  # create + migrate once, before any thread
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, str], frozenset[str]] = {}
        self._capture_sessions: dict[int, Session] = {}
        self._roomcast = roomcast
        self._own_roomcast = roomcast is None  # made here (standalone): stopped at close
        self.store = store if store is not None else Store(layout, self.db)
        self.readthrough = readthrough or ReadThrough(self.store, layout, self.db)

    @property
    def unknown_policy(self) -> str:
        return self.settings.unknown_policy

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
            try:
                found = frozenset(self.store.digests(image, version))
            except NotFound:
                arriving = self.readthrough.manifest(image, version)
                if arriving is None:
                    raise
                found = frozenset(arriving.digests())
            with self._lock:
                self._digests[key] = found
        return found

    def manifest(self, image: str, version: str) -> Manifest:
        """A committed version's manifest, or the signed one of a version arriving from
        its library (read-through)."""
        try:
            return self.store.load(image, version)
        except NotFound:
            arriving = self.readthrough.manifest(image, version)
            if arriving is None:
                raise
            return arriving

    def manifest_file(self, image: str, version: str) -> Path:
        """The file to send for a version's manifest (committed, or arriving)."""
        path = self.store.manifest_path(image, version)
        if not path.exists() and self.readthrough.manifest(image, version) is not None:
            signed = self.readthrough.signed(image, version)
            if signed is not None:
                return signed[1]
        return path

    def chunk_file(self, image: str, version: str, digest: str) -> Path:
        """Where a chunk the job may read is: a version arriving from its library reads
        it from there first (once, however many ask)."""
        path = self.store.chunk_path(digest)
        if path.is_file():
            return path
        if self.readthrough.manifest(image, version) is not None:
            return self.readthrough.path_of(digest)
        return path

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
    def roomcast(self) -> Roomcast:
        """The room sessions: the root's, or (standalone) one made at first use."""
        with self._lock:
            if self._roomcast is None:
                self._roomcast = make_roomcast(self.settings, self.layout, self.store, self.db,
                                               self.readthrough.path_of)  # fmt: skip
            return self._roomcast

    def chunk_pace(self) -> Callable[[int], float] | None:
        """What each block of a chunk served by HTTP must pass while room sessions run
        (the link less their rates), else None: chunks go unpaced, by sendfile."""
        with self._lock:
            roomcast = self._roomcast  # none made yet: no session runs
        return None if roomcast is None else roomcast.http_pace()

    def close(self) -> None:
        if self._own_roomcast and self._roomcast is not None:
            self._roomcast.stop()
        # Release pins only: a capture interrupted by a restart resumes (its client asks
        # what is missing); gc reclaims the chunks if it never commits.
        for job_id in list(self._capture_sessions):
            self.end_capture(job_id)


def make_roomcast(
    settings: Settings,
    layout: Layout,
    store: Store,
    connections: Callable[[], sqlite3.Connection],
    path_of: Callable[[str], Path] | None = None,
) -> Roomcast:
    """The multicast service of ``settings`` (no address: no multicast).  ``path_of``:
    where a chunk is (the read-through's, which reads a chunk of a version arriving from
    its library first; default the store's)."""
    from appliance.roomcast import Roomcast

    return Roomcast(
        settings.address,
        path_of or store.chunk_path,
        connections,
        group=settings.multicast_group,
        port=settings.multicast_port,
        rate=settings.multicast_rate,
        link=settings.link_rate,
        status_dir=layout.roomcast_status,
        query_interval=settings.igmp_query_interval,
        nice=settings.multicast_nice,
    )
