"""Login throttling: too many failed logins for one name *from one address*, or from
one address for any names, lock further attempts from there for a while.

Keyed so that nobody can lock a user out everywhere: guessing the admin's password
from a student's machine locks that machine (for that name), not the admin at the
technicians' desk.  Keys whose failures have aged out are evicted, and the table has a
size bound, so made-up names and addresses cannot grow it without end.  In memory: one
``slate serve`` process serves the console."""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_KEYS = 10_000
NAME_CHARS = 128  # a longer "name" is keyed by its first characters


class Throttle:
    def __init__(self, per_name: int = 5, per_address: int = 20, window: float = 900.0) -> None:
        self.limits = {"pair": per_name, "addr": per_address}
        self.window = window
        self._failures: dict[tuple[str, ...], deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(name: str, address: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("pair", name[:NAME_CHARS], address), ("addr", address)

    def _recent(self, key: tuple[str, ...], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def wait_seconds(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key in self._keys(name, address):
                times = self._recent(key, now)
                if len(times) >= self.limits[key[0]]:
                    wait = max(wait, times[0] + self.window - now)
        return wait

    def failed(self, name: str, address: str, now: float | None = None) -> bool:
        """Count a failed login; True when it is the one that locks (for the audit log)."""
        now = time.monotonic() if now is None else now
        locked = False
        with self._lock:
            if len(self._failures) >= MAX_KEYS:
                self._evict(now)
            for key in self._keys(name, address):
                times = self._failures.setdefault(key, self._recent(key, now))
                times.append(now)
                locked = locked or len(times) == self.limits[key[0]]
        return locked

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(name, address)[0], None)

    def _evict(self, now: float) -> None:
        """Drop aged-out keys; if still full, those whose last failure is oldest."""
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= MAX_KEYS:
            by_age = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in by_age[: len(by_age) - MAX_KEYS // 2]:
                del self._failures[key]

    def __len__(self) -> int:
        return len(self._failures)
