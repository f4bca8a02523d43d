"""One token bucket for everything Slate paces: chunks served by HTTP beside room
sessions (appliance.roomcast.link.HttpPacer) and a school's fetches from a district
library under their cap (appliance.district)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """At most ``bits`` bit/s through :meth:`take`, shared by threads; 0 = not paced.
    ``wire``: what one byte taken costs on the wire (frames and headers), ``burst``:
    the bucket's depth in bytes.

    A block takes its tokens at once, going into debt, and its thread sleeps out the
    debt outside the lock: the blocks of all threads leave in the order they asked,
    and no thread holds the others while it sleeps."""

    def __init__(
        self,
        bits: int = 0,
        *,
        burst: int,
        wire: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock, self.sleep = clock, sleep
        self.burst = float(burst)
        self.wire = wire
        self.bits = max(0, int(bits))
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._at = clock()

    @property
    def paced(self) -> bool:
        return self.bits > 0

    def set_rate(self, bits: int) -> None:
        """Pace to ``bits`` bit/s from now (0: stop pacing)."""
        with self._lock:
            self._refill(self.clock())
            self.bits = max(0, int(bits))
            if not self.bits:
                self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.bits:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.bits / 8.0)
        self._at = now

    def take(self, nbytes: int) -> float:
        """Wait until ``nbytes`` may go; returns the seconds waited."""
        with self._lock:
            if not self.bits:
                return 0.0
            now = self.clock()
            self._refill(now)
            self._tokens -= nbytes * self.wire
            wait = -self._tokens / (self.bits / 8.0) if self._tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait
