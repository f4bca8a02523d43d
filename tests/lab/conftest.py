"""Fixtures of the lab tier (QEMU).  Shared file: each part appends its own section.

Expensive things are built once per session and cached between runs (in
``$SLATE_TEST_CACHE``, default /var/cache/slate-tests): the Debian master image and the
boot environment.
"""

from __future__ import annotations

# --- end-to-end lab (H6): one master image, one boot environment, one appliance -------
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.lab import steps
from appliance.lab.harness import LabRun
from appliance.lab.masterimage import MasterImage, build_master_image, default_cache_dir
from appliance.lab.qemu import Firmware, Machine
from tests.conftest import require_root

E2E_FIGURES = "e2e-figures.jsonl"


def _log(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


@pytest.fixture(scope="session")
def master_image() -> MasterImage:
    """The Debian master image (built on the first run, ~5 min; cached after)."""
    require_root()
    return build_master_image(log=_log)


@pytest.fixture(scope="session")
def bootenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the boot environment's ``vmlinuz`` and ``initrd.img``."""
    require_root()
    home = tmp_path_factory.mktemp("bootenv-home")
    return steps.ensure_bootenv(home, _log)


@dataclass
class E2ELab:
    """The session's appliance in its namespace, with the sample image imported."""

    home: Path
    run: LabRun
    image: MasterImage
    version: str
    mine: list[Machine] = field(default_factory=list)

    def machine(self, name: str, firmware: Firmware, **kw: object) -> Machine:
        if "disk" not in kw and "disk_size" not in kw:
            kw["disk_size"] = self.image.size
        m = self.run.add_machine(name, firmware, **kw)  # type: ignore[arg-type]
        self.mine.append(m)
        return m

    def start(self, *machines: Machine) -> float:
        started = time.monotonic()
        for m in machines:
            self.run.start_machine(m.name)
        return started


@pytest.fixture(scope="session")
def e2e_session(
    tmp_path_factory: pytest.TempPathFactory, master_image: MasterImage, bootenv: Path
) -> Iterator[E2ELab]:
    root = tmp_path_factory.mktemp("e2e")
    home = root / "home"
    home.mkdir()
    steps.ensure_bootenv(home, _log, source=bootenv)
    version = steps.ensure_sample_image(home, master_image, _log)
    accel = os.environ.get("SLATE_LAB_ACCEL", "tcg")
    with LabRun(home, root / "work", accel=accel) as run:
        yield E2ELab(home, run, master_image, version)


@pytest.fixture
def e2e(e2e_session: E2ELab) -> Iterator[E2ELab]:
    """The session lab; machines a test adds are stopped when it ends."""
    e2e_session.mine = []
    yield e2e_session
    for m in e2e_session.mine:
        m.stop()


def sha256_file(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        left = limit if limit is not None else 1 << 62
        while left > 0 and (block := fh.read(min(4 << 20, left))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def first_difference(a: Path, b: Path, block: int = 1 << 20) -> int | None:
    """Offset of the first differing MiB of two files (None = equal content)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        offset = 0
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return offset
            if not x:
                return None
            offset += block


def record_figure(name: str, **values: object) -> None:
    """Keep a measured figure (printed at the end of the run, never asserted)."""
    path = default_cache_dir() / E2E_FIGURES
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps({"name": name, "at": time.time(), **values}) + "\n")
    _log(f"figure {name}: {values}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    path = default_cache_dir() / E2E_FIGURES
    started = getattr(terminalreporter, "_sessionstarttime", None)
    if not path.exists() or started is None:
        return
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["at"] >= started]
    if rows:
        terminalreporter.section("lab figures (measured, not asserted)")
        for r in rows:
            values = {k: v for k, v in r.items() if k not in ("name", "at")}
            terminalreporter.write_line(f"{r['name']}: {values}")
