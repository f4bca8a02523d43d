"""Read-through restores: a restore of a version this appliance has not fetched whole
works while its library is reachable (docs/district.md, "Read-through").

When the job is made (:func:`resolve`), the version's signed manifest is read from the
library, its signature checked against the pinned key and the manifest kept under
``district/`` — with the library unreachable, the job is refused then, with the reason.
In ``slate serve``, :class:`ReadThrough` serves such a version: its manifest from that
signed copy, and each chunk the store lacks read from the library when a restore (HTTP
or the roomcast sender) first needs it.  One :class:`~appliance.district.sync.Fetcher`
per version reads every chunk once however many seats ask (single-flight), checks it
against its name, stores it, and fetches the rest in the background; the version is
committed to the store when all of it is there, and from then on it is an ordinary
version (0 WAN bytes)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.config import Layout
from appliance.errors import NotFound, SlateError
from appliance.formats.manifest import Manifest
from appliance.store import Store

log = logging.getLogger(__name__)


def resolve(layout: Layout, conn: sqlite3.Connection, spec: str, missing: NotFound) -> Manifest:
    """The version ``spec`` names, from a library this appliance knows, when the store
    does not hold it (``missing``: the store's answer).  Its signed manifest is checked
    and kept; raises ``missing`` (with why) when no library has it or none answers."""
    from appliance.district import libraries, sync
    from appliance.district.bucket import Bucket
    from appliance.formats.names import is_version

    image, _, version = spec.partition("@")
    if version and not is_version(version):
        raise missing  # dates and offsets pick among versions here
    known = libraries.all_(conn)
    if not known:
        raise missing
    subscribed = {s.library for s in libraries.subscriptions(conn) if s.image == image}
    known.sort(key=lambda lib: lib.name not in subscribed)  # its subscription's first
    why: list[str] = []
    for lib in known:
        try:
            bucket = Bucket(lib, layout, attempts=1, connect_timeout=3)  # a person waits
            chosen = version or (sync.versions(bucket, image) or [""])[-1]
            if not chosen:
                continue
            return sync.signed_manifest(bucket, layout, image, chosen)
        except NotFound:
            continue
        except SlateError as exc:
            why.append(f"the library {lib.name}: {exc.message}")
    if why:
        raise NotFound(
            f"{spec} is not ready here, and a job for it needs the library: " + "; ".join(why),
            hint="a version that is ready here restores with the WAN down; each version's"
            " state here: `slate library versions IMAGE`",
        ) from None
    raise missing


class ReadThrough:
    """The versions being restored while they arrive from a library (one per process)."""

    def __init__(self, store: Store, layout: Layout, db: Callable[[], sqlite3.Connection]) -> None:
        self.store, self.layout, self.db = store, layout, db
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], _Arriving] = {}

    def signed(self, image: str, version: str) -> tuple[Manifest, Path] | None:
        """The kept signed manifest of a version not committed here (else None)."""
        if self.store.manifest_path(image, version).exists():
            return None
        root = self.layout.district
        if not root.is_dir():
            return None
        for path in sorted(root.glob(f"*/manifests/{image}/{version}.json")):
            try:
                return Manifest.from_json(path.read_bytes()), path
            except (OSError, SlateError):
                continue
        return None

    def manifest(self, image: str, version: str) -> Manifest | None:
        """A version arriving from its library (its reading started), else None."""
        arriving = self._arriving(image, version)
        return None if arriving is None else arriving.manifest

    def path_of(self, digest: str) -> Path:
        """Where the chunk is — after reading it from the library first when a version
        arriving here names it and the store lacks it (the roomcast sender and the
        chunk route call this)."""
        path = self.store.chunk_path(digest)
        if path.is_file():
            return path
        with self._lock:
            arriving = [a for a in self._active.values() if digest in a.digests]
        for a in arriving:
            a.get_once(digest)
            break
        return path

    def _arriving(self, image: str, version: str) -> _Arriving | None:
        key = (image, version)
        with self._lock:
            found = self._active.get(key)
        if found is not None:
            return found
        signed = self.signed(image, version)
        if signed is None:
            return None
        library = signed[1].relative_to(self.layout.district).parts[0]
        with self._lock:
            found = self._active.get(key)
            if found is None:
                found = self._active[key] = _Arriving(self, library, signed[0])
                found.start()
        return found

    def _done(self, arriving: _Arriving) -> None:
        with self._lock:
            key = (arriving.manifest.image, arriving.manifest.version)
            if self._active.get(key) is arriving:
                del self._active[key]

    def close(self) -> None:
        with self._lock:
            active = list(self._active.values())
        for a in active:
            a.thread.join(timeout=0.1)


class _Arriving:
    """One version being read from its library: a Fetcher run in a thread, asked for
    single chunks meanwhile."""

    def __init__(self, owner: ReadThrough, library: str, manifest: Manifest) -> None:
        self.owner, self.library, self.manifest = owner, library, manifest
        self.digests = frozenset(manifest.digests())
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.fetcher: object | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"read-through {manifest.ref}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from appliance.district import libraries
        from appliance.district.bucket import Bucket
        from appliance.district.sync import Fetcher

        try:
            lib = libraries.get(self.owner.db(), self.library)
            bucket = Bucket(lib, self.owner.layout)
            with Fetcher(self.owner.store, bucket, self.owner.layout, self.manifest) as f:
                self.fetcher = f
                self.ready.set()
                try:
                    f.run()
                finally:
                    self.fetcher = None  # its session ends with this block
            log.info("read-through %s: whole here (%d chunk(s), %d bytes from %s)",
                     self.manifest.ref, f.moved.moved, f.moved.bytes, lib.name)  # fmt: skip
        except Exception as exc:  # kept for the restores that wait on it
            self.error = exc
            log.warning("read-through %s stopped: %s", self.manifest.ref, exc)
        finally:
            self.ready.set()
            self.owner._done(self)

    def get_once(self, digest: str) -> None:
        self.ready.wait(60)
        fetcher = self.fetcher
        if fetcher is None:
            if self.error is not None:
                raise NotFound(f"{self.manifest.ref} cannot be read from its library: {self.error}")
            return
        from appliance.district.sync import Fetcher

        assert isinstance(fetcher, Fetcher)
        fetcher.get_once(digest)
