"""Shared helpers of the benchmarks: timing, medians, and the ratio table.

Every benchmark measures Slate and a baseline in the same run and prints the ratio;
figures are medians of several runs.  Import from a bench script as
``from _common import median, timed, Row, print_rows`` (bench/ is on sys.path when a
script there runs) or ``from bench._common import ...`` from the repository root.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (monotonic clock)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_timed(args: Sequence[str], **kw: object) -> float:
    """Seconds a command takes; raises when it fails."""
    return timed(lambda: subprocess.run(list(args), check=True, **kw))  # type: ignore[call-overload]


def medians(
    fn: Callable[[], float], runs: int, before: Callable[[], object] | None = None
) -> float:
    """Median of ``runs`` values of ``fn()``, calling ``before()`` untimed each time."""
    values = []
    for _ in range(runs):
        if before is not None:
            before()
        values.append(fn())
    return median(values)


@dataclass
class Row:
    """One line of a result table: Slate's figure, the baseline's, and the goal."""

    what: str
    slate: float
    baseline: float
    unit: str
    goal: str = ""
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.slate / self.baseline if self.baseline else float("inf")


def print_rows(rows: Sequence[Row], title: str = "") -> None:
    if title:
        print(title)
    header = f"{'measure':<40} {'slate':>10} {'baseline':>10} {'unit':<6} {'ratio':>8}  goal"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.what:<40} {r.slate:>10.2f} {r.baseline:>10.2f} {r.unit:<6} {r.ratio:>7.3f}x"
            f"  {r.goal}"
        )
