"""Quantities as people read them, for the CLI and the web console alike."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_rate(text: str) -> int:
    """A rate as people write it, ``900M``, ``1G``, ``40m``, ``250000000`` (bit/s),
    → bit/s; ``auto``/"" → 0."""
    t = text.strip().lower().removesuffix("bit/s").removesuffix("bps")
    if t in ("", "auto", "0"):
        return 0
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:], 1)
    number = float(t[:-1] if scale != 1 else t)
    if not 1_000_000 <= number * scale <= 100_000_000_000:
        raise ValueError("the rate must be between 1M and 100G bit/s")
    return int(number * scale)
