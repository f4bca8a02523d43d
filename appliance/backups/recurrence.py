"""When a recurring schedule is due: pure functions of (schedules, now, last runs).

``--every`` is written in the appliance's local time: ``daily 02:00``, ``weekdays
07:30``, ``mon,thu 18:30``, ``weekly sun 03:00``.  On the day clocks go forward a time
that does not exist (02:30 in Europe/Berlin) runs at the same distance after the gap
(03:30); on the day they go back a time that exists twice runs once, at the first.

:func:`plan` decides, for each schedule, which occurrences came since the last one
handled: the newest is *due* if it is no older than the grace period, every other one
is *skipped* (the appliance was down, or a restart came between).  The caller stores
the newest occurrence handled in the same transaction as the jobs it creates, so an
occurrence is acted on once, whatever restarts come.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from appliance.errors import UsageError
from appliance.refs import localize

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_GRACE = timedelta(hours=1)
HINT = 'write "daily 02:00", "weekdays 07:30", "mon,thu 18:30" or "weekly sun 03:00"'
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Every:
    days: frozenset[int]  # 0 = Monday … 6 = Sunday
    at: time
    text: str

    def __str__(self) -> str:
        return self.text


def parse_every(text: str) -> Every:
    words = text.strip().lower().split()
    if len(words) == 3 and words[0] == "weekly":
        words = words[1:]
    if len(words) != 2:
        raise UsageError(f"--every {text!r} is not a schedule", hint=HINT)
    when, clock = words
    match = _TIME.match(clock)
    if not match:
        raise UsageError(f"{clock!r} in --every {text!r} is not a time (HH:MM)", hint=HINT)
    if when in ("daily", "day", "everyday"):
        days = frozenset(range(7))
    elif when == "weekdays":
        days = frozenset(range(5))
    elif when == "weekends":
        days = frozenset({5, 6})
    else:
        names = [d[:3] for d in when.split(",")]
        if not names or any(n not in DAYS for n in names):
            raise UsageError(f"{when!r} in --every {text!r} is not a list of days", hint=HINT)
        days = frozenset(DAYS.index(n) for n in names)
    at = time(int(match[1]), int(match[2]))
    return Every(days, at, " ".join(text.strip().lower().split()))


def occurrence_on(day: date, at: time, tz: tzinfo | None) -> datetime:
    """The one instant (UTC) of wall-clock ``at`` on ``day`` (fold=0: see module doc)."""
    return localize(datetime.combine(day, at), tz).astimezone(UTC)


def occurrences(
    every: Every, after: datetime, until: datetime, tz: tzinfo | None
) -> list[datetime]:
    """Occurrences in ``(after, until]``, oldest first, one per matching local day."""
    first = after.astimezone(tz).date() - timedelta(days=1)
    last = until.astimezone(tz).date() + timedelta(days=1)
    out = []
    day = first
    while day <= last:
        if day.weekday() in every.days:
            when = occurrence_on(day, every.at, tz)
            if after < when <= until:
                out.append(when)
        day += timedelta(days=1)
    return out


@dataclass(frozen=True)
class Schedule:
    """What the decision needs of a schedule."""

    id: int
    every: Every
    since: datetime  # no occurrence at or before this (creation, resume)
    paused: bool = False


@dataclass(frozen=True)
class Plan:
    due: list[tuple[int, datetime]] = field(default_factory=list)
    skipped: list[tuple[int, datetime]] = field(default_factory=list)
    handled: dict[int, datetime] = field(default_factory=dict)  # new last occurrence


def plan(
    schedules: Sequence[Schedule],
    now: datetime,
    last: Mapping[int, datetime],
    *,
    tz: tzinfo | None = None,
    grace: timedelta = DEFAULT_GRACE,
) -> Plan:
    """Which occurrences to act on now, which to skip, and what to remember."""
    result = Plan()
    for s in schedules:
        if s.paused:
            continue
        start = max(s.since, last[s.id]) if s.id in last else s.since
        # Look back no further than needed: a schedule idle for a year is not a year of
        # daily occurrences to list.
        start = max(start, now - max(grace, timedelta(days=8)))
        found = occurrences(s.every, start, now, tz)
        if not found:
            continue
        newest = found[-1]
        for when in found[:-1]:
            result.skipped.append((s.id, when))
        if now - newest <= grace:
            result.due.append((s.id, newest))
        else:
            result.skipped.append((s.id, newest))
        result.handled[s.id] = newest
    return result
