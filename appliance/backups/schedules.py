"""Recurring captures and restores (table ``schedules``): add, list, pause, and
:meth:`Schedules.run_once`, which the appliance's Housekeeping loop calls.

Each job a schedule creates carries ``{"schedule": id, "occurrence": UTC time}`` in its
options.  ``run_once`` creates the jobs of an occurrence, then records it as handled; if
the appliance stops in between, the next run finds the jobs by that key and only records
it.  So an occurrence makes its jobs once, whatever restarts come (see recurrence.py).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from appliance import audit
from appliance.backups import recurrence
from appliance.config import Layout
from appliance.db import transaction
from appliance.errors import Conflict, NotFound, SlateError, UsageError
from appliance.formats.names import is_image_name
from appliance.jobs import Jobs, queries
from appliance.machines.queries import name_of, names_by_mac
from appliance.refs import check_spec

log = logging.getLogger("slate.schedule")
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(STAMP)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    id: int
    host: str | None  # MAC
    host_name: str | None
    room: str | None
    action: str
    image: str
    every: str
    wake: bool
    paused: bool
    note: str
    created_by: str
    created_at: str
    since: str
    last_occurrence: str | None
    last_result: str

    @property
    def target(self) -> str:
        return f"room {self.room}" if self.room else f"host {self.host_name}"

    def next_run(self, now: datetime, tz: tzinfo | None = None) -> str | None:
        if self.paused:
            return None
        start = max([now, _parse(self.since)] + ([_parse(self.last_occurrence)]
                    if self.last_occurrence else []))  # fmt: skip
        found = recurrence.occurrences(
            recurrence.parse_every(self.every), start, start + timedelta(days=8), tz
        )
        return _stamp(found[0]) if found else None

    def to_dict(self, now: datetime | None = None, tz: tzinfo | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = self.target
        d["next_run"] = self.next_run(now or datetime.now(UTC), tz)
        return d


def _row(r: sqlite3.Row, host_name: str | None) -> Schedule:
    """A schedule of its row; ``host_name`` is its host's (None: a room's schedule)."""
    data = {k: r[k] for k in Schedule.__dataclass_fields__ if k != "host_name"}
    data["wake"], data["paused"] = bool(r["wake"]), bool(r["paused"])
    return Schedule(**data, host_name=host_name)


Waker = Callable[[Sequence[str]], object]


def restore_rules(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(id, image reference) of every restore schedule, paused ones too."""
    rows = conn.execute("SELECT id, image FROM schedules WHERE action='restore'")
    return [(int(r[0]), str(r[1])) for r in rows.fetchall()]


class Schedules:
    def __init__(self, conn: sqlite3.Connection, layout: Layout) -> None:
        self.conn = conn
        self.layout = layout
        self.jobs = Jobs(conn, layout)

    # -- manage ------------------------------------------------------------------------
    def add(
        self,
        *,
        action: str,
        image: str,
        every: str,
        actor: str,
        host: str | None = None,
        room: str | None = None,
        wake: bool = False,
        note: str = "",
        now: datetime | None = None,
    ) -> Schedule:
        if (host is None) == (room is None):
            raise UsageError("a schedule is for one --host or one --room")
        rule = recurrence.parse_every(every)
        if action == "capture":
            if room is not None:
                raise UsageError(
                    "a capture comes from one machine, not a room",
                    hint="schedule a capture per machine: --host NAME --capture IMAGE",
                )
            if not is_image_name(image):
                raise UsageError(f"{image!r} is not an image name", hint="a capture makes NAME")
        elif action == "restore":
            check_spec(image)
        else:
            raise UsageError(f"a schedule captures or restores, not {action!r}")
        mac = self.jobs.inventory.get_host(host).mac if host is not None else None
        if room is not None:
            self.jobs.inventory.get_room(room)
        since = _stamp(now or datetime.now(UTC))
        with transaction(self.conn):
            cur = self.conn.execute(
                "INSERT INTO schedules(host, room, action, image, every, wake, note, created_by,"
                " since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (mac, room, action, image, rule.text, int(wake), note, actor, since),
            )
            sid = int(cur.lastrowid or 0)
            s = self.get(sid)
            audit.record(self.conn, actor, "schedule.add", s.target,
                         f"schedule {sid}: {action} {image} every {rule.text}")  # fmt: skip
        return s

    def get(self, sid: int) -> Schedule:
        row = self.conn.execute("SELECT * FROM schedules WHERE id=?", (sid,)).fetchone()
        if row is None:
            raise NotFound(f"no schedule {sid}", hint="see `slate schedule list`")
        return _row(row, name_of(self.conn, row["host"]))

    def all(self) -> list[Schedule]:
        names = names_by_mac(self.conn)
        rows = self.conn.execute("SELECT * FROM schedules ORDER BY id").fetchall()
        return [_row(r, names.get(r["host"])) for r in rows]

    def remove(self, sid: int, *, actor: str) -> Schedule:
        s = self.get(sid)
        with transaction(self.conn):
            self.conn.execute("DELETE FROM schedules WHERE id=?", (sid,))
            audit.record(self.conn, actor, "schedule.rm", s.target, f"schedule {sid}")
        return s

    def set_paused(
        self, sid: int, paused: bool, *, actor: str, now: datetime | None = None
    ) -> Schedule:
        """Pause, or resume: occurrences that came while paused are never run."""
        s = self.get(sid)
        with transaction(self.conn):
            if paused:
                self.conn.execute("UPDATE schedules SET paused=1 WHERE id=?", (sid,))
            else:
                since = _stamp(now or datetime.now(UTC))
                self.conn.execute("UPDATE schedules SET paused=0, since=? WHERE id=?", (since, sid))
            what = "schedule.pause" if paused else "schedule.resume"
            audit.record(self.conn, actor, what, s.target, f"schedule {sid}")
        return self.get(sid)

    # -- run ---------------------------------------------------------------------------
    def run_once(
        self,
        now: datetime | None = None,
        *,
        tz: tzinfo | None = None,
        grace: timedelta = recurrence.DEFAULT_GRACE,
        wake: Waker | None = None,
    ) -> list[tuple[Schedule, str, list[int]]]:
        """Create the jobs of every due occurrence; returns (schedule, occurrence, job ids)."""
        now = now or datetime.now(UTC)
        rows = {s.id: s for s in self.all()}
        decided = recurrence.plan(
            [
                recurrence.Schedule(
                    s.id, recurrence.parse_every(s.every), _parse(s.since), s.paused
                )
                for s in rows.values()
            ],
            now,
            {s.id: _parse(s.last_occurrence) for s in rows.values() if s.last_occurrence},
            tz=tz,
            grace=grace,
        )
        for sid, when in decided.skipped:
            log.warning("schedule %d (%s %s of %s, every %s): the occurrence at %s was skipped:"
                        " the appliance was not running within %s of it", sid,
                        rows[sid].action, rows[sid].image, rows[sid].target, rows[sid].every,
                        _stamp(when), grace)  # fmt: skip
        due = dict(decided.due)
        done = []
        for sid, newest in decided.handled.items():
            s = rows[sid]
            result = "skipped: the appliance was not running then"
            created: list[int] = []
            if sid in due:
                created, result = self._occur(s, _stamp(due[sid]), wake)
                done.append((s, _stamp(due[sid]), created))
            self.conn.execute(
                "UPDATE schedules SET last_occurrence=?, last_result=? WHERE id=?",
                (_stamp(newest), f"{_stamp(newest)}: {result}", sid),
            )
        return done

    def _occur(self, s: Schedule, when: str, wake: Waker | None) -> tuple[list[int], str]:
        actor = f"schedule:{s.id}"
        key = {"schedule": s.id, "occurrence": when}
        macs = [s.host] if s.host else [h.mac for h in self.jobs.inventory.hosts(s.room)]
        made: list[int] = []
        problems: list[str] = []
        for mac in macs:
            assert mac is not None
            existing = queries.scheduled(self.conn, mac, s.id, when)
            if existing is not None:  # made before a restart, not yet recorded
                made.append(existing)
                continue
            try:
                if s.action == "capture":
                    job = self.jobs.capture(mac, s.image, actor=actor, note=s.note, options=key)
                else:
                    job = self.jobs.restore(mac, s.image, actor=actor, options=key)
            except (Conflict, SlateError) as exc:
                name = self.jobs.inventory.get_host(mac).name
                problems.append(f"{name}: {exc.message}")
                log.warning("schedule %d: no %s job for %s at %s: %s", s.id, s.action, name,
                            when, exc.message)  # fmt: skip
                continue
            self.jobs.log(job.id, [f"created by schedule {s.id} ({s.action} {s.image} every "
                                   f"{s.every}) for {when}"])  # fmt: skip
            made.append(job.id)
        if s.wake and made and wake is not None:
            woken = [self.jobs.get(j).host for j in made]
            try:
                wake(woken)
            except (OSError, SlateError) as exc:
                problems.append(f"Wake-on-LAN failed: {exc}")
        result = f"job(s) {', '.join(map(str, made))}" if made else "no job"
        if problems:
            result += "; " + "; ".join(problems)
        log.info("schedule %d at %s: %s", s.id, when, result)
        return made, result
