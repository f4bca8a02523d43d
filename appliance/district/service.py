"""The subscriptions, run by ``slate serve``: every ``library_sync_interval`` seconds,
one pass of :func:`appliance.district.sync.run_pass` — the publications image policies
name, then the subscriptions (what `slate library sync`
does at once).  A library that cannot be reached is logged and tried again next pass.

The same pass backs up the appliance's own state (appliance.district.statebackup) to
each library's area of this appliance's whose newest backup is older than a day (when
`slate library state-key` made a key): what `slate library backup-state` does at once."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from appliance.config import Layout
from appliance.errors import SlateError
from appliance.periodic import Periodic
from appliance.store import Store

log = logging.getLogger("slate.district")

STATE_BACKUP_EVERY = 24 * 3600.0  # s: a state backup a day


class LibrarySync(Periodic):
    def __init__(
        self,
        layout: Layout,
        connect: Callable[[], sqlite3.Connection],
        interval: float,
        *,
        state_backup_every: float = STATE_BACKUP_EVERY,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__("library-sync", interval, first=min(5.0, interval))  # soon at start
        self.layout, self.connect = layout, connect
        self.passes = 0
        self.state_backup_every, self.now = state_backup_every, now
        self.state_backups: list[dict[str, object]] = []  # what the last pass backed up
        self._newest: dict[str, datetime] = {}  # area → its newest backup seen

    def run_once(self) -> list[dict[str, object]]:
        from appliance.district.sync import run_pass

        try:
            rows = run_pass(Store(self.layout, self.connect), self.layout,
                                     self.connect())  # fmt: skip
        finally:
            self.state_backups = self.back_up_state()
        self.passes += 1
        self.write_status()
        for row in rows:
            what = f"{row['library']}/{row['image']}"
            result = str(row["result"])
            if result == "fetched":
                log.info("fetched %s@%s: %s chunk(s), %s bytes in %s s", what, row["version"],
                         row["moved"], row["bytes"], row["seconds"])  # fmt: skip
            elif result.startswith("failed"):
                log.warning("library sync of %s %s", what, result)
        return rows

    def back_up_state(self) -> list[dict[str, object]]:
        """A state backup into each area whose newest one is older than
        ``state_backup_every``; one row per area.  Never raises: failures are logged."""
        from appliance.district import libraries, statebackup
        from appliance.district.bucket import Bucket

        rows: list[dict[str, object]] = []
        try:
            key = statebackup.own_key(self.layout)
            if key is None:
                return rows
            libs = [lib for lib in libraries.all_(self.connect()) if lib.area]
        except Exception:
            log.exception("state backup: cannot read the state key or the libraries")
            return rows
        for lib in libs:
            row: dict[str, object] = {"library": lib.name, "area": lib.area}
            try:
                now = self.now()
                seen = self._newest.get(lib.area)
                if seen is not None and (now - seen).total_seconds() < self.state_backup_every:
                    continue  # known to be recent: the area is not even listed
                area = Bucket(lib.area_library(), self.layout)
                found = statebackup.backups(area)
                last = statebackup.created_of(found[-1][0]) if found else None
                if last is not None and (now - last).total_seconds() < self.state_backup_every:
                    self._newest[lib.area] = last
                    continue
                made = statebackup.backup(self.layout, area, key, now)
                self._newest[lib.area] = now
                log.info("state backup to %s/%s: %d bytes, sealed with %s", made.url,
                         made.name, made.bytes, made.key)  # fmt: skip
                rows.append(row | {"result": "backed up", "object": made.name})
            except SlateError as exc:
                log.warning("state backup to %s (library %s) failed: %s", lib.area, lib.name,
                            exc.message)  # fmt: skip
                rows.append(row | {"result": f"failed: {exc.message}"})
            except Exception as exc:
                log.exception("state backup to %s (library %s) failed", lib.area, lib.name)
                rows.append(row | {"result": f"failed: {exc}"})
        return rows

    def write_status(self) -> None:
        """This appliance's status into each of its areas (the district view); logged."""
        from appliance.district import status

        try:
            done = status.write_all(Store(self.layout, self.connect), self.layout,
                                    self.connect(), interval=self.interval)  # fmt: skip
        except Exception:
            log.exception("district status: not written")
            return
        for library, error in done:
            if error:
                log.warning("district status to library %s not written: %s", library, error)
