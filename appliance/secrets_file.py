"""Secret files (keys, signing secrets, logins), written one way everywhere.

A secret file is never seen half-written nor, for an instant, readable by others: its
bytes go to a temporary file beside it (same directory, so the same filesystem), created
with ``O_EXCL`` at the file's mode (0600) and fsynced, which then takes the file's name
in one step.  :func:`write_secret` replaces the file (``rename``); :func:`read_or_create`
makes it only if it is absent (``link``, which fails when the name exists), so processes
racing to create one all end up reading the same secret.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

SECRET_MODE = 0o600


def _temp_copy(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a new temporary file beside ``path``, at ``mode``, on disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def write_secret(path: Path, data: bytes | str, mode: int = SECRET_MODE) -> Path:
    """Write ``data`` to ``path`` atomically at ``mode`` (replacing what was there)."""
    tmp = _temp_copy(path, _bytes(data), mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_or_create(path: Path, make: Callable[[], bytes | str], mode: int = SECRET_MODE) -> bytes:
    """The contents of ``path``; if it does not exist, ``make()``'s, stored there first.
    Race-free: of processes creating it at once, the first one's secret is kept and
    every one of them returns it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    tmp = _temp_copy(path, _bytes(make()), mode)
    try:
        os.link(tmp, path)  # atomic "create if absent": a racing process keeps the first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


def random_secret(size: int = 32) -> Callable[[], bytes]:
    """A ``make`` for :func:`read_or_create`: ``size`` random bytes."""
    return lambda: secrets.token_bytes(size)
