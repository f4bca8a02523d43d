"""Shared fixtures.  Tiers are chosen by folder: tests/unit (default), tests/interop
(real clients in network namespaces), tests/lab (QEMU), tests/browser (Chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("unit", "interop", "lab", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = parts[0] if parts and parts[0] in TIERS else "unit"
        item.add_marker(getattr(pytest.mark, tier))
    # Fast tiers first, so a broken unit test fails the run early.
    items.sort(key=lambda it: TIERS.index(_tier(it)))


def _tier(item: pytest.Item) -> str:
    for tier in TIERS:
        if item.get_closest_marker(tier):
            return tier
    return "unit"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh, empty Slate data directory."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def slate(home: Path):
    """Run the real ``slate`` CLI in a subprocess against ``home``."""

    def run(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, SLATE_HOME=str(home))
        env.update(kw.pop("env", {}))
        proc = subprocess.run(
            [sys.executable, "-m", "appliance.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"slate {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this tier needs root (network namespaces / QEMU); CI runs as root")
