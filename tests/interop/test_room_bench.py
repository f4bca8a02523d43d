"""bench/room_bench.py --quick runs end to end (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from client_kit import ROOT

from tests.conftest import require_root


def test_room_bench_quick_runs() -> None:
    require_root()
    proc = subprocess.run(
        # 100 Mbit/s: every row still runs (figures are the full run's), in 78 s, not 108
        [sys.executable, "bench/room_bench.py", "--quick", "--seat-mbit", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # the seats ran as in the boot environment: Debian's python3 (./run installs its zstandard)
    assert "Seats run /usr/bin/python3," in proc.stdout, proc.stdout
    for row in ("roomcast T_N/T_1", "loaded", "half-rate seat", "late joiner", "1 % loss",
                "delta room", "a forger on the VLAN", "at a quarter of the rate",
                "two rooms of 1", "udpcast, two sessions", "unshaped veth"):  # fmt: skip
        assert row in proc.stdout, proc.stdout
