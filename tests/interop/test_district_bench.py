"""bench/district_bench.py --quick runs end to end (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from client_kit import ROOT

from tests.conftest import require_root


def test_district_bench_quick_runs() -> None:
    require_root()
    proc = subprocess.run([sys.executable, "bench/district_bench.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for row in ("first version", "slate ", "rclone copy", "FOG-style rsync",
                "slate's fetch itself", "5 % of its chunks changed", "a cold room of 3 seats",
                "three schools fetching at once", "capped at 20 Mbit/s"):  # fmt: skip
        assert row in proc.stdout, proc.stdout
