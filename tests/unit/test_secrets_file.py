"""Secret files: written atomically at 0600, and created once however many race."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

from appliance.secrets_file import read_or_create, write_secret


def _race(path: str, mine: bytes, start: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    def make() -> bytes:
        time.sleep(0.05)  # both have found no file: they race to create it
        return mine

    time.sleep(max(0.0, start - time.time()))
    out.put(read_or_create(Path(path), make))


def test_two_processes_racing_read_the_same_secret(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        path = tmp_path / f"secret-{round_}"
        out = ctx.Queue()
        start = time.time() + 0.2
        procs = [
            ctx.Process(target=_race, args=(str(path), bytes([n]) * 32, start, out)) for n in (1, 2)
        ]
        for p in procs:
            p.start()
        got = [out.get(timeout=30), out.get(timeout=30)]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        assert got[0] == got[1] == path.read_bytes()
        assert got[0] in (b"\x01" * 32, b"\x02" * 32)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_existing_secret_is_read_not_made(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"kept")
    assert read_or_create(path, lambda: b"new") == b"kept"


def test_write_secret_replaces_atomically_at_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = os.umask(0)
    try:
        write_secret(path, '{"a": 1}')
        assert path.read_text() == '{"a": 1}'
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        write_secret(path, b"two")
        assert path.read_bytes() == b"two"
        write_secret(tmp_path / "cert.pem", b"public", mode=0o644)
        assert stat.S_IMODE((tmp_path / "cert.pem").stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "state.json"]
