"""A background thread that runs ``run_once`` every ``interval`` seconds until stopped
(housekeeping, the district subscriptions).  An error in one pass is logged and the
next pass comes as usual: no periodic task may take the appliance down."""

from __future__ import annotations

import logging
import threading


class Periodic:
    """Subclasses define :meth:`run_once`; ``first`` is the wait before the first pass
    (default: one interval)."""

    def __init__(self, name: str, interval: float, first: float | None = None) -> None:
        self.interval = interval
        self.first = interval if first is None else first
        self.log = logging.getLogger(f"slate.{name}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def run_once(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        wait = self.first
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.run_once()
            except Exception:
                self.log.exception("%s failed; trying again in %.0f s", self._thread.name,
                                   self.interval)  # fmt: skip
