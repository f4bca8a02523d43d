"""Output helpers shared by every command: errors, tables, JSON, progress bars."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from appliance.units import human_bytes as human_bytes  # the commands import it from here


def die(message: str, hint: str | None = None, code: int = 1) -> int:
    """Print one clear error line (and a hint) to stderr; return the exit code."""
    print(f"slate: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return code


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripting")


def add_group(subparsers: Any, name: str, help_text: str) -> tuple[argparse.ArgumentParser, Any]:
    """Add a command group (``slate NAME …``) and return (parser, its subparsers)."""
    group = subparsers.add_parser(name, help=help_text, description=help_text)
    group.set_defaults(help_parser=group)
    return group, group.add_subparsers(metavar="SUBCOMMAND")


def print_json(data: Any, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, sort_keys=True, default=str)
    (out or sys.stdout).write("\n")


def print_table(
    rows: Iterable[Sequence[Any]], headers: Sequence[str], out: TextIO | None = None
) -> None:
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, unless forced)."""

    def __init__(
        self, total: int, label: str = "", *, stream: TextIO | None = None, force: bool = False
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.2 or done >= self.total):
            self._last = now
            self._draw(now)

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0
        bar = "#" * int(frac * 30)
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% "
            f"{human_bytes(self.done)}/{human_bytes(self.total)} "
            f"{human_bytes(rate)}/s ETA {eta:4.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
