"""Publish a version to a library, fetch one from it, and say what a school holds.

Publish: only the chunks the bucket lacks are uploaded (listed once, then put in
parallel); every chunk the manifest names is confirmed in the bucket; the signature
goes next and the manifest last, so a version in the bucket is never half there.

Fetch: the manifest and its signature are read and checked against the pinned key
before anything is stored; the signed manifest is kept in the data directory; only the
chunks the local store lacks are read, each decompressed and checked against its name
before it is stored (a chunk whose bytes do not match is refused and read again, once);
the version is committed to the store only when every chunk is there.  Interrupted, it
resumes where it was: the chunks stored are not read again.

State: a version's state at this appliance is counted from the chunks in the local
store against the signed manifest — never from a transfer log."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.config import Layout
from appliance.district import keys
from appliance.district.bucket import PUBLISHER_KEY, Bucket
from appliance.district.libraries import Library
from appliance.district.pacing import BURST, OutsideWindow, Window
from appliance.errors import Conflict, IntegrityError, NotFound, SlateError, UsageError
from appliance.formats.manifest import Manifest
from appliance.formats.names import chunk_relpath, is_version, manifest_relpath
from appliance.pacing import TokenBucket
from appliance.secrets_file import write_secret
from appliance.store import Store
from appliance.store.library import version_key

WORKERS = 2
Progress = Callable[[int, int, int], None]  # (chunks done, chunks to do, bytes so far)


@dataclass
class Moved:
    """What one publish or fetch moved."""

    chunks: int = 0  # chunks the version names
    moved: int = 0  # chunks uploaded / fetched
    bytes: int = 0  # their stored (compressed) bytes
    seconds: float = 0.0
    refetched: int = 0  # chunks read again after their bytes did not match

    def to_dict(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "moved": self.moved, "bytes": self.bytes,
                "seconds": round(self.seconds, 2), "refetched": self.refetched}  # fmt: skip


def _sig_relpath(image: str, version: str) -> str:
    return manifest_relpath(image, version).removesuffix(".json") + ".sig"


# -- publish ------------------------------------------------------------------------------
def claim(bucket: Bucket, layout: Layout) -> str:
    """Put this appliance's public key in the library (once); Conflict when another
    appliance's key is there: one publisher per library."""
    mine = keys.public_hex(keys.own_key(layout))
    there = bucket.get_or_none(PUBLISHER_KEY)
    if there is None:
        bucket.put(PUBLISHER_KEY, mine.encode())
        return mine
    if there.decode(errors="replace").strip() != mine:
        raise Conflict(
            f"the library {bucket.lib.name} is published by another appliance"
            f" ({keys.fingerprint(there.decode(errors='replace'))})",
            hint="publish from that appliance, or give this one a library of its own",
        )
    return mine


def publish(
    store: Store,
    bucket: Bucket,
    layout: Layout,
    image: str,
    version: str,
    *,
    progress: Progress | None = None,
    workers: int = WORKERS,
    cap: int = 0,
    window: Window | None = None,
    now: Callable[[], datetime] = datetime.now,
) -> Moved:
    """Upload what the bucket lacks of ``image@version``, then its signature and its
    manifest; at most ``cap`` bit/s, only while ``window`` is open (:class:`OutsideWindow`
    when it closes: what was uploaded stays, and the next publish sends only the rest)."""
    if window is not None and not window.open_at(now()):
        raise OutsideWindow(f"outside the publish window {window}; nothing sent")
    pace = TokenBucket(cap, burst=BURST).take if cap else None
    manifest = store.load(image, version)
    key = keys.own_key(layout)
    claim(bucket, layout)
    started = time.monotonic()
    digests = sorted(manifest.digests())
    there = _chunks_there(bucket)
    # A chunk the bucket lacks, or holds with other bytes (its size or, for an object put
    # in one piece, its ETag = MD5 differs from ours): uploaded (again).
    todo = [d for d in digests if not _same(store, d, there.get(d))]
    moved = Moved(chunks=len(digests))
    lock = threading.Lock()

    def upload(digest: str) -> None:
        if window is not None and not window.open_at(now()):
            raise OutsideWindow(
                f"{manifest.ref}: the publish window {window} closed; {moved.moved} of"
                f" {len(todo)} chunk(s) sent, the rest in the next window"
            )
        frame = store.read_frame(digest)
        if pace is not None:  # the cap, held over the frame before it goes
            for at in range(0, len(frame), BURST):
                pace(min(BURST, len(frame) - at))
        bucket.put(chunk_relpath(digest), frame)
        with lock:
            moved.moved += 1
            moved.bytes += len(frame)
            if progress:
                progress(moved.moved, len(todo), moved.bytes)

    _run(min(workers, 2) if cap else workers, upload, todo)
    # Confirm every chunk the manifest names before the manifest goes in.
    there = _chunks_there(bucket)
    lacking = [d for d in digests if not _same(store, d, there.get(d))]
    if lacking:
        raise IntegrityError(
            f"{manifest.ref}: {len(lacking)} chunk(s) are not in the library after the upload,"
            f" e.g. {lacking[0]}; the version was not published",
            hint="publish again: only what is missing is sent",
        )
    data = manifest.to_json()
    bucket.put(_sig_relpath(image, version), keys.sign(key, data))
    bucket.put(manifest_relpath(image, version), data)
    moved.seconds = time.monotonic() - started
    return moved


def _chunks_there(bucket: Bucket) -> dict[str, tuple[int, str]]:
    return {
        key.rsplit("/", 1)[-1].removesuffix(".zst"): (size, etag)
        for key, size, etag, _written in bucket.objects("chunks/")
    }


def _same(store: Store, digest: str, there: tuple[int, str] | None) -> bool:
    """Whether the bucket's object of ``digest`` holds the bytes of our frame."""
    if there is None:
        return False
    size, etag = there
    path = store.chunk_path(digest)
    if size != path.stat().st_size:
        return False
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower()):
        return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest() == etag.lower()
    return True  # a multipart ETag is not an MD5 of the bytes: the size must do


def _run(workers: int, fn: Callable[[str], None], items: list[str]) -> None:
    if not items:
        return
    with ThreadPoolExecutor(max(1, min(workers, len(items)))) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()  # the first error stops the rest from being waited on


# -- fetch --------------------------------------------------------------------------------
def versions(bucket: Bucket, image: str) -> list[str]:
    """The versions of ``image`` published in the library (manifest present), oldest first
    (by time: ``…50Z`` before ``…50.823856Z``, which text order would swap)."""
    out = []
    for k in bucket.keys(f"manifests/{image}/"):
        name = k.rsplit("/", 1)[-1]
        if name.endswith(".json") and is_version(name.removesuffix(".json")):
            out.append(name.removesuffix(".json"))
    return sorted(out, key=version_key)


def pinned_key(lib: Library, layout: Layout) -> bytes:
    if lib.publisher_key:
        return keys.parse_public(lib.publisher_key)
    return bytes.fromhex(keys.public_hex(keys.own_key(layout)))


def signed_manifest(bucket: Bucket, layout: Layout, image: str, version: str) -> Manifest:
    """The version's manifest from the library, its signature checked against the
    pinned key, kept under the data directory."""
    ref = f"{image}@{version}"
    data = bucket.get_or_none(manifest_relpath(image, version))
    if data is None:
        raise NotFound(
            f"{ref} is not in the library {bucket.lib.name}",
            hint=f"`slate library versions {image} --from {bucket.lib.name}`",
        )
    signature = bucket.get_or_none(_sig_relpath(image, version)) or b""
    keys.verify(pinned_key(bucket.lib, layout), data, signature, ref)
    manifest = Manifest.from_json(data)
    if (manifest.image, manifest.version) != (image, version):
        raise IntegrityError(f"{ref}: the signed manifest names {manifest.ref}; refused")
    path = cached_manifest(layout, bucket.lib.name, image, version)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_secret(path, data, mode=0o644)
    return manifest


def cached_manifest(layout: Layout, library: str, image: str, version: str) -> Any:
    return layout.district / library / manifest_relpath(image, version)


def fetch(
    store: Store,
    bucket: Bucket,
    layout: Layout,
    image: str,
    version: str | None = None,
    *,
    progress: Progress | None = None,
    workers: int = WORKERS,
    cap: int = 0,
    window: Window | None = None,
    now: Callable[[], datetime] = datetime.now,
) -> tuple[Manifest, Moved]:
    """Fetch ``image@version`` (the newest published when None) into the store, at most
    ``cap`` bit/s, only while ``window`` is open (:class:`OutsideWindow` when it closes:
    what was stored stays, and the next fetch goes on from there)."""
    if window is not None and not window.open_at(now()):
        raise OutsideWindow(f"outside the fetch window {window}; nothing fetched")
    if version is None:
        found = versions(bucket, image)
        if not found:
            raise NotFound(f"the library {bucket.lib.name} holds no version of {image}")
        version = found[-1]
    manifest = signed_manifest(bucket, layout, image, version)
    with Fetcher(store, bucket, layout, manifest, cap=cap, window=window, now=now) as fetcher:
        fetcher.progress = progress
        fetcher.run(workers)
    return manifest, fetcher.moved


class _Flight:
    """One chunk being read from the library; whoever else needs it waits for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class Fetcher:
    """Brings one signed version into the store: :meth:`run` reads every chunk the
    store lacks and commits the version when all are there; :meth:`get_once` reads one
    chunk now (a restore asking for it before ``run`` got there).  Each chunk is read
    from the library once however many ask (single-flight), checked, then stored.
    ``with Fetcher(...) as f:`` holds a store session that pins the chunks against gc
    until the block ends."""

    def __init__(
        self,
        store: Store,
        bucket: Bucket,
        layout: Layout,
        manifest: Manifest,
        *,
        cap: int = 0,
        window: Window | None = None,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.store, self.bucket, self.manifest = store, bucket, manifest
        self.window, self.now, self.cap = window, now, cap
        self.pace = TokenBucket(cap, burst=BURST).take if cap else None
        self.digests = frozenset(manifest.digests())
        self.moved = Moved(chunks=len(self.digests))
        self.progress: Progress | None = None
        self.todo = 0
        self.partial = layout.district / "partial"  # a cut read goes on from there
        self.partial.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._flying: dict[str, _Flight] = {}
        self._started = time.monotonic()
        self._session_cm = store.session()
        self.session: Any = None

    def __enter__(self) -> Fetcher:
        self.session = self._session_cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            self.session.created.clear()  # keep what was fetched: the next fetch resumes
        self._session_cm.__exit__(*exc)

    def run(self, workers: int = WORKERS) -> Manifest:
        """Read every chunk the store lacks, then commit the version (unless it is)."""
        committed = self.store.manifest_path(self.manifest.image, self.manifest.version)
        already = committed.exists()
        # In the order restores need them (disk by disk, from the start): a room being
        # restored while the version arrives (read-through) finds the next chunk here.
        ordered = [c.digest for disk in self.manifest.disks for c in disk.chunks if c.digest]
        todo = self.session.missing(ordered)
        self.todo = len(todo)
        _run(min(workers, 2) if self.cap else workers, self.get_once, todo)
        if not already:
            self.session.commit(self.manifest)
        self.moved.seconds = time.monotonic() - self._started
        return self.manifest

    def get_once(self, digest: str) -> None:
        """``digest`` is in the store when this returns (read from the library by this
        call, or by the one already reading it)."""
        with self._lock:
            if self.store.has_chunk(digest):
                return
            flight = self._flying.get(digest)
            mine = flight is None
            if flight is None:
                flight = self._flying[digest] = _Flight()
        if not mine:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return
        try:
            self._get(digest)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            flight.done.set()
            with self._lock:
                self._flying.pop(digest, None)

    def _get(self, digest: str) -> None:
        ref = self.manifest.ref
        if self.window is not None and not self.window.open_at(self.now()):
            raise OutsideWindow(
                f"{ref}: the fetch window {self.window} closed; {self.moved.moved} of"
                f" {self.todo} chunk(s) fetched, the rest in the next window"
            )
        part = self.partial / f"{digest}.part"
        for attempt in (1, 2):
            frame = self.bucket.get_into(chunk_relpath(digest), part, self.pace)
            try:
                self.session.put_chunk_frame(digest, frame)
            except IntegrityError:
                part.unlink(missing_ok=True)
                if attempt == 2:
                    raise IntegrityError(
                        f"{ref}: chunk {digest} in the library does not match its"
                        " name (read twice); nothing of it was stored",
                        hint="the bucket's copy is damaged: `slate library publish` of the"
                        " version at the publishing appliance puts it back (it replaces"
                        " chunks whose bytes differ)",
                    ) from None
                with self._lock:
                    self.moved.refetched += 1
                continue
            part.unlink(missing_ok=True)
            with self._lock:
                self.moved.moved += 1
                self.moved.bytes += len(frame)
                if self.progress:
                    self.progress(self.moved.moved, self.todo, self.moved.bytes)
            return


# -- state --------------------------------------------------------------------------------
def state(store: Store, layout: Layout, library: str, image: str, version: str) -> dict[str, Any]:
    """absent / fetching (n of N chunks here) / ready, counted from the store."""
    path = cached_manifest(layout, library, image, version)
    committed = store.manifest_path(image, version)
    if path.exists():
        manifest = Manifest.from_json(path.read_bytes())
    elif committed.exists():
        manifest = store.load(image, version)
    else:
        return {"version": version, "state": "absent", "have": 0, "chunks": None}
    digests = manifest.digests()
    have = sum(1 for d in digests if store.has_chunk(d))
    ready = committed.exists() and have == len(digests)
    name = "ready" if ready else ("fetching" if have or committed.exists() else "absent")
    return {"version": version, "state": name, "have": have, "chunks": len(digests)}


def check_ref(text: str) -> tuple[str, str | None]:
    image, _, version = text.partition("@")
    if not image:
        raise UsageError(f"{text!r} is not IMAGE or IMAGE@VERSION")
    return image, version or None


# -- publications -------------------------------------------------------------------------
def run_publications(
    store: Store, layout: Layout, conn: Any, *, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Each image whose policy names a library (`slate image policy IMAGE --publish
    LIBRARY`): its promoted versions newer than the newest the library holds are
    published, oldest first.  One row per image."""
    from appliance.district import libraries
    from appliance.store import policy as policies

    rows: list[dict[str, Any]] = []
    for pol in policies.every(conn):
        if not pol.publish:
            continue
        row: dict[str, Any] = {"library": pol.publish, "image": pol.image, "publish": True}
        try:
            bucket = Bucket(libraries.get(conn, pol.publish), layout)
            there = versions(bucket, pol.image)
            last = version_key(there[-1]) if there else None
            newer = [v for v in store.promoted_ids(pol.image)
                     if last is None or version_key(v) > last]  # fmt: skip
            if not newer:
                rows.append(row | {"version": there[-1] if there else None,
                                   "result": "published"})  # fmt: skip
                continue
            for version in newer:
                moved = publish(store, bucket, layout, pol.image, version, progress=progress)
                rows.append(row | {"version": version, "result": "published now",
                                   **moved.to_dict()})  # fmt: skip
        except SlateError as exc:  # one library down does not stop the others
            rows.append(row | {"result": f"failed: {exc.message}"})
    return rows


def run_pass(
    store: Store,
    layout: Layout,
    conn: Any,
    *,
    now: Callable[[], datetime] = datetime.now,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """What `slate serve` does every few minutes and `slate library sync` at once: the
    publications, then the subscriptions."""
    rows = run_publications(store, layout, conn, progress=progress)
    return rows + run_subscriptions(store, layout, conn, now=now, progress=progress)


# -- subscriptions ------------------------------------------------------------------------
def run_subscriptions(
    store: Store,
    layout: Layout,
    conn: Any,
    *,
    now: Callable[[], datetime] = datetime.now,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """One pass over the subscriptions (what the appliance does every few minutes, and
    `slate library sync` does at once): each one whose window is open fetches the newest
    version of its image that is not ready here.  One row per subscription."""
    from appliance.district import libraries

    rows: list[dict[str, Any]] = []
    for sub in libraries.subscriptions(conn):
        row: dict[str, Any] = {"library": sub.library, "image": sub.image}
        window = Window.parse(sub.window)
        if window is not None and not window.open_at(now()):
            rows.append(row | {"result": f"waiting for its window {window}"})
            continue
        lib = libraries.get(conn, sub.library)
        bucket = Bucket(lib, layout)
        try:
            found = versions(bucket, sub.image)
            if not found:
                rows.append(row | {"result": "the library holds no version of it yet"})
                continue
            newest = found[-1]
            if state(store, layout, lib.name, sub.image, newest)["state"] == "ready":
                rows.append(row | {"version": newest, "result": "ready"})
                continue
            _, moved = fetch(store, bucket, layout, sub.image, newest, cap=sub.cap,
                             window=window, now=now, progress=progress)  # fmt: skip
            rows.append(row | {"version": newest, "result": "fetched", **moved.to_dict()})
        except OutsideWindow as exc:
            rows.append(row | {"result": exc.message})
        except SlateError as exc:  # one library down does not stop the others
            rows.append(row | {"result": f"failed: {exc.message}"})
    return rows
