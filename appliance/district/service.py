"""The subscriptions, run by ``slate serve``: every ``library_sync_interval`` seconds,
one pass of :func:`appliance.district.sync.run_subscriptions` (what `slate library sync`
does at once).  A library that cannot be reached is logged and tried again next pass."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from appliance.config import Layout
from appliance.store import Store

log = logging.getLogger("slate.district")


class LibrarySync:
    def __init__(
        self, layout: Layout, connect: Callable[[], sqlite3.Connection], interval: float
    ) -> None:
        self.layout, self.connect, self.interval = layout, connect, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="library-sync", daemon=True)
        self.passes = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> list[dict[str, object]]:
        from appliance.district.sync import run_subscriptions

        rows = run_subscriptions(Store(self.layout, self.connect), self.layout, self.connect())
        self.passes += 1
        for row in rows:
            what = f"{row['library']}/{row['image']}"
            result = str(row["result"])
            if result == "fetched":
                log.info("fetched %s@%s: %s chunk(s), %s bytes in %s s", what, row["version"],
                         row["moved"], row["bytes"], row["seconds"])  # fmt: skip
            elif result.startswith("failed"):
                log.warning("library sync of %s %s", what, result)
        return rows

    def _loop(self) -> None:
        # The first pass soon after the start, then every interval.
        wait = min(5.0, self.interval)
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.run_once()
            except Exception:  # never let a library take the appliance down
                log.exception("library sync failed; trying again in %.0f s", self.interval)
