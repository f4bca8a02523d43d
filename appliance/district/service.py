"""The subscriptions, run by ``slate serve``: every ``library_sync_interval`` seconds,
one pass of :func:`appliance.district.sync.run_subscriptions` (what `slate library sync`
does at once).  A library that cannot be reached is logged and tried again next pass."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from appliance.config import Layout
from appliance.periodic import Periodic
from appliance.store import Store

log = logging.getLogger("slate.district")


class LibrarySync(Periodic):
    def __init__(
        self, layout: Layout, connect: Callable[[], sqlite3.Connection], interval: float
    ) -> None:
        super().__init__("library-sync", interval, first=min(5.0, interval))  # soon at start
        self.layout, self.connect = layout, connect
        self.passes = 0

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
