"""bench/client_bench.py --quick runs end to end (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from client_kit import ROOT

from tests.conftest import require_root


def test_client_bench_quick_runs() -> None:
    require_root()
    proc = subprocess.run(
        [sys.executable, "bench/client_bench.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for measure in ("restore, loopback", "delta restore", "1 Gbit/s", "first capture", "4x larger"):
        assert measure in proc.stdout
