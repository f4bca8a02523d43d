"""Sessions: how an import or a capture upload keeps ``gc`` away from its chunks.

A session is a file ``sessions/<id>.pins`` that its process holds an exclusive
``flock`` on for as long as it lives (the kernel drops the lock when the process
dies, even by ``kill -9``).  Every chunk name the session is about to write or reuse
is appended to that file *before* the session checks whether the chunk exists, under
a shared lock on ``gc.lock``; ``gc`` holds ``gc.lock`` exclusively and keeps every
chunk named in a live session's file.  So a chunk is either pinned before gc looks,
or looked up after gc finished deleting: never deleted under a running import.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path


class GcLock:
    """``gc.lock``: shared while pinning, exclusive while collecting."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exclusive(self) -> _Held:
        return _Held(self.path, fcntl.LOCK_EX)

    def shared(self) -> _Held:
        return _Held(self.path, fcntl.LOCK_SH)


class _Held:
    def __init__(self, path: Path, mode: int) -> None:
        self.path, self.mode, self.fd = path, mode, -1

    def __enter__(self) -> None:
        # A fresh open per use: flock belongs to the open file, so threads of one
        # process (an HTTP server's uploads and its gc) exclude each other correctly.
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, self.mode)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Pins:
    """The pin file of one live session (see module doc)."""

    def __init__(self, sessions_dir: Path, lock: GcLock) -> None:
        self.id = secrets.token_hex(8)
        self.lock = lock
        self.path = sessions_dir / f"{self.id}.pins"
        self._tlock = threading.Lock()
        self._pinned: set[str] = set()
        # Lock the file before it gets its visible name, so gc never sees it unlocked.
        tmp = sessions_dir / f".{self.id}.new"
        self.fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.rename(tmp, self.path)

    def pin(self, digests: Iterable[str]) -> None:
        with self._tlock:
            new = [d for d in dict.fromkeys(digests) if d not in self._pinned]
            if not new:
                return
            with self.lock.shared():
                os.write(self.fd, "".join(d + "\n" for d in new).encode())
            self._pinned.update(new)

    def close(self) -> None:
        if self.fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = -1


def live_pins(sessions_dir: Path) -> dict[str, set[str]]:
    """{id of a live session: the chunks it pinned}; removes dead sessions' files.
    Call with ``gc.lock`` held exclusively."""
    live: dict[str, set[str]] = {}
    for path in _session_files(sessions_dir):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live[path.name.split(".")[0]] = _read_pins(fd)
                continue
            path.unlink(missing_ok=True)  # its process is gone
        finally:
            os.close(fd)
    return live


def _session_files(sessions_dir: Path) -> Iterator[Path]:
    try:
        yield from (p for p in sessions_dir.iterdir() if p.name.endswith(".pins"))
    except FileNotFoundError:
        return


def _read_pins(fd: int) -> set[str]:
    chunks = []
    while True:
        buf = os.read(fd, 1 << 20)
        if not buf:
            break
        chunks.append(buf)
    return {line for line in b"".join(chunks).decode().split("\n") if len(line) == 64}
