"""Keeps bench/http_bench.py from rotting: its --quick mode must run (no timing checks)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_http_bench_quick_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "http_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ratio slate/nginx:" in proc.stdout
