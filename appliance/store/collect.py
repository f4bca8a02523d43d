"""Garbage collection: remove chunks that no committed manifest names, no version
arriving from a district library names and no live session has pinned, and temp files
of writers that are gone."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from appliance.formats.manifest import Manifest
from appliance.formats.names import is_digest
from appliance.store.sessions import GcLock, live_pins


class Store(Protocol):
    """What collection needs of the library (:class:`appliance.store.library.Store`,
    which calls :func:`collect`: the arrow runs one way)."""

    root: Path
    gc_lock: GcLock

    def all_manifests(self) -> list[Manifest]: ...
    def arriving_digests(self) -> set[str]: ...
    def chunk_files(self) -> Iterator[Path]: ...
    def chunk_path(self, digest: str) -> Path: ...


# Temp files not tied to a session (commits, session-less uploads) older than this
# belong to a writer that died.
STALE_TMP_SECONDS = 3600


@dataclass
class GcResult:
    removed: int = 0
    freed: int = 0
    kept: int = 0
    tmp_removed: int = 0
    live_sessions: list[str] = field(default_factory=list)


def collect(
    store: Store, *, candidates: set[str] | None = None, exclude_session: str | None = None
) -> GcResult:
    """Delete unreferenced chunks among ``candidates`` (default: every stored chunk).

    Holds ``gc.lock`` exclusively, so no session can pin a chunk half-way through.
    Reads every manifest first: if one cannot be read, nothing is deleted."""
    result = GcResult()
    with store.gc_lock.exclusive():
        sessions = live_pins(store.root / "sessions")
        result.live_sessions = sorted(s for s in sessions if s != exclude_session)
        keep: set[str] = set()
        for sid, pins in sessions.items():
            if sid != exclude_session:
                keep |= pins
        for m in store.all_manifests():  # raises on a damaged manifest: delete nothing
            keep |= m.digests()
        keep |= store.arriving_digests()  # versions on their way from a district library
        if candidates is None:
            candidates = {p.name[:-4] for p in store.chunk_files() if is_digest(p.name[:-4])}
        for digest in sorted(candidates):
            if digest in keep:
                result.kept += 1
                continue
            path = store.chunk_path(digest)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            result.removed += 1
            result.freed += size
        if exclude_session is None:
            result.tmp_removed = _clean_tmp(store, set(sessions))
    return result


def _clean_tmp(store: Store, live: set[str]) -> int:
    removed = 0
    now = time.time()
    for path in (store.root / "tmp").iterdir():
        tag = path.name.split(".")[0]
        if tag in live:
            continue
        if len(tag) != 16 and now - path.stat().st_mtime < STALE_TMP_SECONDS:
            continue  # a session-less writer that may still be running
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed
