"""The image library on disk: chunks, manifests, sessions — the files are the truth,
the SQLite rows (appliance.store.index) only an index of them.

    store/chunks/<h0h1>/<sha256>.zst     one zstd frame, written once (temp + rename)
    store/manifests/<image>/<ver>.json   committed last, atomically, never overwritten
    store/sessions/<id>.pins             live imports/uploads (see sessions.py)
    store/tmp/                           temp files of writers (same filesystem)
    store/gc.lock
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import zstandard

from appliance import audit, db, refs
from appliance.config import Layout
from appliance.errors import Conflict, IntegrityError, NotFound, SlateError, UsageError
from appliance.formats.chunkio import decode_chunk
from appliance.formats.manifest import MAX_CHUNK_SIZE, Manifest
from appliance.formats.names import chunk_relpath, is_digest, is_image_name, is_version
from appliance.secrets_file import write_secret
from appliance.store import index, policy
from appliance.store.sessions import GcLock, Pins

# The layout of the store's files (the tree above, chunk and manifest names), recorded in
# ``store/format`` when the store is made; a store of a newer format is refused untouched.
STORE_FORMAT = 1
FORMAT_FILE = "format"

# A version's marks (files beside its manifest): not yet promoted; never pruned.
MARKS = ("candidate", "keep")
VERIFY_HINT = "run `slate image verify` to see which chunks and versions are affected"


def version_key(version: str) -> tuple[str, str]:
    """Sort key: ``…T120000Z`` < ``…T120000.5Z`` < ``…T120001Z``."""
    base, _, frac = version.rstrip("Z").partition(".")
    return base, frac.ljust(6, "0")


def check_name(name: str) -> str:
    if not is_image_name(name):
        raise UsageError(
            f"{name!r} is not a valid image name",
            hint="use letters, digits, '.', '_' and '-' (no '/' or '..'), at most 64",
        )
    return name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME@VERSION`` → (name, version or None), validated."""
    name, sep, version = ref.partition("@")
    check_name(name)
    if sep and not is_version(version):
        raise UsageError(
            f"{version!r} is not a version id",
            hint=f"versions look like 20261125T162431Z; `slate image show {name}` lists them",
        )
    return name, (version if sep else None)


def check_format(root: Path) -> int:
    """The store's format (``store/format``; a store without the file is format 1, made
    before it was recorded); a store of a format newer than this code's is refused."""
    try:
        text = (root / FORMAT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return 1
    if not text.isdigit():
        raise IntegrityError(
            f"{root / FORMAT_FILE} does not hold a store format number: {text[:40]!r}",
            hint=f"it should hold {STORE_FORMAT} if the store was made by this Slate",
        )
    found = int(text)
    if found > STORE_FORMAT:
        raise SlateError(
            f"the image library {root} has format {found}, newer than this Slate knows"
            f" ({STORE_FORMAT}): it was written by a newer Slate; it is left as it is",
            hint="install that newer Slate again",
        )
    return found


class Store:
    def __init__(
        self, layout: Layout, connections: Callable[[], sqlite3.Connection] | None = None
    ) -> None:
        """``connections``: this thread's connection to the index, shared with the rest
        of the process (:class:`appliance.db.ThreadConnections`); None = the store's own."""
        self.layout = layout
        self.root = layout.store
        check_format(self.root)
        for sub in ("chunks", "manifests", "sessions", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not (self.root / FORMAT_FILE).exists():  # new, or made before it was recorded
            write_secret(self.root / FORMAT_FILE, f"{STORE_FORMAT}\n", mode=0o644)
        self.gc_lock = GcLock(self.root / "gc.lock")
        self._connections = connections or db.ThreadConnections(layout.db)

    # ------------------------------------------------------------------ database
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the index."""
        return self._connections()

    # ------------------------------------------------------------------ chunks
    def chunk_path(self, digest: str) -> Path:
        return self.root / chunk_relpath(digest)

    def has_chunk(self, digest: str) -> bool:
        return self.chunk_path(digest).is_file()

    def missing(self, digests: Iterable[str]) -> list[str]:
        return [d for d in dict.fromkeys(digests) if not self.has_chunk(d)]

    def read_frame(self, digest: str) -> bytes:
        try:
            return self.chunk_path(digest).read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"chunk {digest} is missing from the store", VERIFY_HINT) from None

    def put_chunk_frame(self, digest: str, frame: bytes, *, tag: str = "x") -> bool:
        """Store a frame after checking it decompresses to the chunk named ``digest``.
        Returns False when the chunk was already there.  Use a session's method of the
        same name while a capture is in progress, so gc keeps the chunk."""
        if not is_digest(digest):
            raise UsageError(f"{digest!r} is not a chunk name (sha256 hex)")
        try:
            length = zstandard.frame_content_size(frame)
        except zstandard.ZstdError:
            length = -1
        if not 0 < length <= MAX_CHUNK_SIZE:
            raise IntegrityError(f"chunk {digest} upload is not a zstd frame with its size")
        decode_chunk(digest, frame, length)
        return self.write_chunk(digest, frame, tag=tag)

    def write_chunk(self, digest: str, frame: bytes, *, tag: str = "x") -> bool:
        """Atomically store a frame already known to be right (temp file + rename)."""
        path = self.chunk_path(digest)
        if path.is_file():
            return False
        path.parent.mkdir(exist_ok=True)
        tmp = self.root / "tmp" / f"{tag}.{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(frame)
            os.rename(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # never leave a partial file behind (disk full)
            raise _store_error(self.root, f"cannot store chunk {digest}", exc) from exc
        return True

    def chunk_files(self) -> Iterator[Path]:
        for sub in sorted((self.root / "chunks").iterdir()):
            if sub.is_dir():
                yield from (p for p in sub.iterdir() if p.name.endswith(".zst"))

    # ------------------------------------------------------------------ sessions
    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """``with store.session() as s:`` — pins the chunks it writes or reuses until
        the block ends (commit inside it); on an error its new chunks are removed."""
        s = Session(self)
        try:
            yield s
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error; gc cleans later
                s.abort()
            raise
        finally:
            s.close()

    # ------------------------------------------------------------------ manifests
    def manifest_path(self, name: str, version: str) -> Path:
        if not is_version(version):  # never a path outside the store
            raise UsageError(
                f"{version!r} is not a version id",
                hint=f"versions look like 20261125T162431Z; `slate image show {name}` lists them",
            )
        return self.root / "manifests" / check_name(name) / f"{version}.json"

    def images(self) -> list[str]:
        base = self.root / "manifests"
        return sorted(p.name for p in base.iterdir() if is_image_name(p.name) and self._ids(p))

    def version_ids(self, name: str) -> list[str]:
        return self._ids(self.root / "manifests" / check_name(name))

    def _ids(self, folder: Path) -> list[str]:
        try:
            names = [p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json")]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted((v for v in names if is_version(v)), key=version_key)

    def load(self, name: str, version: str) -> Manifest:
        path = self.manifest_path(name, version)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"image {name} has no version {version}",
                hint=self.library_hint(name, version)
                or f"`slate image show {name}` lists its versions",
            ) from None
        m = Manifest.from_json(text)
        if (m.image, m.version) != (name, version):
            raise IntegrityError(f"manifest {path} names {m.ref} instead of {name}@{version}")
        return m

    def library_hint(self, name: str, version: str | None = None) -> str | None:
        """Why a version is not here when a district library has it: it has not been
        fetched whole yet (the signed manifests a fetch keeps under the data
        directory's ``district/``, counted against this store's chunks)."""
        root = self.layout.district
        if not root.is_dir():
            return None
        found = sorted(root.glob(f"*/manifests/{name}/{version or '*'}.json"),
                       key=lambda p: p.stem)  # fmt: skip
        if not found:
            return None
        path = found[-1]
        library = path.relative_to(root).parts[0]
        try:
            digests = Manifest.from_json(path.read_bytes()).digests()
        except (OSError, SlateError):
            return None
        have = sum(1 for d in digests if self.has_chunk(d))
        return (
            f"{name}@{path.stem} is in the library {library} but not whole here ({have} of"
            f" {len(digests)} chunks): `slate library fetch {name}@{path.stem} --from"
            f" {library}`, or wait for its subscription; a restore starts only from a"
            " version that is all here"
        )

    # ------------------------------------------------------------------ marks
    def mark_path(self, name: str, version: str, mark: str) -> Path:
        """``manifests/<image>/<version>.candidate`` / ``.keep``: a version's marks are
        files beside its manifest, so a copied store carries them."""
        if mark not in MARKS:
            raise ValueError(f"unknown mark {mark!r}")
        return self.manifest_path(name, version).with_suffix(f".{mark}")

    def marks(self, name: str) -> dict[str, frozenset[str]]:
        """{version: its marks} for the versions of ``name`` that have any."""
        found: dict[str, set[str]] = {}
        try:
            entries = list((self.root / "manifests" / check_name(name)).iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return {}
        for p in entries:
            stem, _, ext = p.name.rpartition(".")
            if ext in MARKS and is_version(stem):
                found.setdefault(stem, set()).add(ext)
        return {v: frozenset(m) for v, m in found.items()}

    def is_promoted(self, name: str, version: str) -> bool:
        return not self.mark_path(name, version, "candidate").exists()

    def promoted_ids(self, name: str) -> list[str]:
        """Versions that a reference without an exact id may resolve to, oldest first."""
        marks = self.marks(name)
        return [v for v in self.version_ids(name) if "candidate" not in marks.get(v, ())]

    def set_mark(self, name: str, version: str, mark: str, on: bool) -> bool:
        """Set or clear a mark of a committed version; True when it changed."""
        self.load(name, version)  # NotFound with its hint
        path = self.mark_path(name, version, mark)
        if on == path.exists():
            return False
        if on:
            self._write_mark(path)
        else:
            path.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        return True

    def _write_mark(self, path: Path) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "\n"
        tmp = self.root / "tmp" / f"m.{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "w") as fh:
                fh.write(stamp)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _store_error(self.root, f"cannot write {path.name}", exc) from exc
        _fsync_dir(path.parent)

    def resolve_ref(
        self, spec: str, *, now: dt.datetime | None = None, tz: dt.tzinfo | None = None
    ) -> Manifest:
        """The version an image reference names (see appliance.refs): an exact id may
        be a candidate; NAME, a date or ``-3d`` only ever pick a promoted version."""
        ref = refs.parse_ref(spec, now or dt.datetime.now(dt.UTC), tz)
        ids = self.version_ids(ref.image)
        if not ids:
            raise NotFound(
                f"there is no image {ref.image!r}",
                hint=self.library_hint(ref.image, ref.version) or "`slate image list` shows images",
            )
        if ref.version is not None:
            return self.load(ref.image, ref.version)
        chosen = refs.select(self.promoted_ids(ref.image), ref)
        if chosen is None:
            when = f" at or before {ref.until:%Y-%m-%d %H:%M:%S} UTC" if ref.until else ""
            newer = [v for v in ids if ref.until is None or refs.version_time(v) <= ref.until]
            hint = (
                f"candidate version(s) {', '.join(newer[-3:])} are not promoted: "
                f"`slate image promote {ref.image}@{newer[-1]}`, or name the version exactly"
                if newer
                else f"`slate image versions {ref.image}` lists its versions"
            )
            raise NotFound(f"image {ref.image} has no promoted version{when}", hint=hint)
        return self.load(ref.image, chosen)

    def versions(self, name: str) -> list[Manifest]:
        return [self.load(name, v) for v in self.version_ids(name)]

    def resolve(self, name: str, version: str | None = None) -> Manifest:
        ids = self.version_ids(name)
        if not ids:
            raise NotFound(f"there is no image {name!r}", hint="`slate image list` shows images")
        return self.load(name, version or ids[-1])

    def digests(self, name: str, version: str) -> frozenset[str]:
        return self.load(name, version).digests()

    def all_manifests(self) -> list[Manifest]:
        return [m for name in self.images() for m in self.versions(name)]

    def arriving_digests(self) -> set[str]:
        """The chunks of versions on their way from a district library (the signed
        manifests a fetch keeps under ``district/``, of versions not committed here):
        gc keeps them, so a fetch cut short resumes without reading them again."""
        root = self.layout.district
        found: set[str] = set()
        if not root.is_dir():
            return found
        for path in root.glob("*/manifests/*/*.json"):
            if self.manifest_path(path.parent.name, path.stem).exists():
                continue  # committed: its chunks are kept as any version's
            try:
                found |= Manifest.from_json(path.read_bytes()).digests()
            except (OSError, SlateError):
                continue  # a damaged copy keeps nothing; the fetch reads it again
        return found

    def new_version_id(self, name: str | None = None) -> str:
        now = dt.datetime.now(dt.UTC)
        version = now.strftime("%Y%m%dT%H%M%SZ")
        if name is not None and self.manifest_path(name, version).exists():
            version = now.strftime("%Y%m%dT%H%M%S.%fZ")
        return version

    def commit(self, manifest: Manifest, *, candidate: bool = False) -> Manifest:
        """Make a version visible: only when every chunk it names is stored; atomic;
        never replaces an existing version (Conflict).  ``candidate`` (a capture): the
        version is not promoted unless its image's policy says auto-promote; its
        ``.candidate`` mark is durable before the manifest appears, so no reference
        without an exact id can pick it up in between, not even after a crash."""
        missing = self.missing(sorted(manifest.digests()))
        if missing:
            raise IntegrityError(
                f"cannot commit {manifest.ref}: {len(missing)} chunk(s) are not stored, "
                f"e.g. {missing[0]}",
                hint="upload the missing chunks first",
            )
        path = self.manifest_path(manifest.image, manifest.version)
        path.parent.mkdir(exist_ok=True)
        if path.exists():
            raise Conflict(f"version {manifest.ref} already exists")
        promoted_by = ""
        if candidate and policy.get(self.db(), manifest.image).auto_promote:
            promoted_by, candidate = "auto-promote", False
        tmp = self.root / "tmp" / f"m.{secrets.token_hex(8)}.tmp"
        try:
            if candidate:
                self._write_mark(self.mark_path(manifest.image, manifest.version, "candidate"))
            with open(tmp, "wb") as fh:
                fh.write(manifest.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)  # unlike rename, fails if the version exists
        except FileExistsError:
            raise Conflict(f"version {manifest.ref} already exists") from None
        except OSError as exc:
            if candidate:
                self.mark_path(manifest.image, manifest.version, "candidate").unlink(
                    missing_ok=True
                )
            raise _store_error(self.root, f"cannot commit {manifest.ref}", exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        index.add(self.db(), manifest, self.stored_size(manifest.digests()))
        if promoted_by:
            audit.record(self.db(), promoted_by, "image.promote", manifest.ref, "at commit")
        return manifest

    def set_note(self, name: str, version: str, note: str) -> Manifest:
        """Change a version's note: the manifest is rewritten atomically (temp file, fsync,
        rename), so readers see the old or the new file, never a mix.  Its chunks, and so
        every byte a restore writes, are untouched."""
        if len(note) > 1000 or any(ord(c) < 32 and c not in "\t" for c in note):
            raise UsageError(
                "a note is one line of at most 1000 characters",
                hint="leave out line breaks and control characters",
            )
        current = self.load(name, version)
        changed = dataclasses.replace(current, note=note)
        path = self.manifest_path(name, version)
        tmp = self.root / "tmp" / f"m.{secrets.token_hex(8)}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(changed.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        index.add(self.db(), changed, self.stored_size(changed.digests()))
        return changed

    def remove(self, name: str, version: str) -> None:
        path = self.manifest_path(name, version)
        if not path.exists():
            raise NotFound(
                f"image {name} has no version {version}",
                hint=f"`slate image show {name}` lists its versions",
            )
        path.unlink()
        for mark in MARKS:
            self.mark_path(name, version, mark).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the image's last version
        index.remove(self.db(), name, version)

    def stored_size(self, digests: Iterable[str]) -> int:
        total = 0
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                total += self.chunk_path(d).stat().st_size
        return total


class Session:
    """One import or capture upload in progress (see appliance.store.sessions)."""

    def __init__(self, store: Store, *, candidate: bool = False) -> None:
        self.store = store
        self.candidate = candidate  # a capture: its version is committed as a candidate
        self.pins = Pins(store.root / "sessions", store.gc_lock)
        self.id = self.pins.id
        self.created: set[str] = set()
        self._lock = threading.Lock()
        # New chunk files are fsynced in the background while the import goes on, so
        # the commit (which needs them durable first) does not wait for all of them.
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="fsync")
        self._flushes: list[Future[None]] = []

    def pin(self, digests: Iterable[str]) -> None:
        self.pins.pin(digests)

    def missing(self, digests: Iterable[str]) -> list[str]:
        digests = list(dict.fromkeys(digests))
        self.pin(digests)  # before looking: see sessions.py
        return self.store.missing(digests)

    def need(self, digest: str) -> bool:
        """Pin ``digest``; True when it is not stored yet."""
        self.pin([digest])
        return not self.store.has_chunk(digest)

    def put_chunk_frame(self, digest: str, frame: bytes) -> bool:
        self.pin([digest])
        return self._created(digest, self.store.put_chunk_frame(digest, frame, tag=self.id))

    def write_chunk(self, digest: str, frame: bytes) -> bool:
        self.pin([digest])
        return self._created(digest, self.store.write_chunk(digest, frame, tag=self.id))

    def _created(self, digest: str, new: bool) -> bool:
        if new:
            flush = self._flusher.submit(_fsync, self.store.chunk_path(digest))
            with self._lock:
                self.created.add(digest)
                self._flushes.append(flush)
        return new

    def commit(self, manifest: Manifest) -> Manifest:
        """Wait until this session's new chunks are on disk, then commit the manifest."""
        with self._lock:
            flushes = list(self._flushes)
        for flush in flushes:
            flush.result()
        return self.store.commit(manifest, candidate=self.candidate)

    def abort(self) -> None:
        """Remove the chunks this session created that nothing else uses."""
        from appliance.store.collect import collect

        collect(self.store, candidates=set(self.created), exclude_session=self.id)

    def close(self) -> None:
        self._flusher.shutdown(wait=True, cancel_futures=True)
        self.pins.close()


def _store_error(root: Path, what: str, exc: OSError) -> SlateError:
    """An OS error of the store's filesystem as a sentence (a full disk above all)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SlateError(
            f"{what}: the store's filesystem ({root}) is full",
            hint="free space there (`slate image prune`, `slate image gc`) or give the store "
            "a larger disk, then capture again",
        )
    return SlateError(f"{what}: {exc.strerror or exc}", hint=f"check the filesystem of {root}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
