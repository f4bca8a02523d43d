"""Keeps bench/image_bench.py runnable (no timing assertions: figures live in docs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_image_bench_quick_runs_and_prints_ratios(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "image_bench.py"), "--quick", "--size", "96M",
         "--cache", str(tmp_path)], capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for measure in ("import throughput", "export throughput", "stored size", "re-import"):
        assert measure in proc.stdout
    assert proc.stdout.count("x  ") >= 4  # a ratio per row
    assert list(tmp_path.glob("disk-96M-*.img"))  # cached for the next run
    assert not list(tmp_path.glob("work-*")) and not list(tmp_path.glob("tree-*"))
