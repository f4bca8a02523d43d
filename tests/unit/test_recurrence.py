"""The scheduler as a pure function of (schedules, now, last runs) → due jobs: across
DST changes (Europe/Berlin), restarts, downtime longer than the grace period, pauses."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.backups.recurrence import Schedule, occurrences, parse_every, plan
from appliance.errors import UsageError

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "days", "at"),
    [
        ("daily 02:00", set(range(7)), time(2, 0)),
        ("weekdays 7:30", {0, 1, 2, 3, 4}, time(7, 30)),
        ("mon,thu 18:30", {0, 3}, time(18, 30)),
        ("Weekly  SUN 03:00", {6}, time(3, 0)),
        ("monday,friday 00:00", {0, 4}, time(0, 0)),
        ("weekends 23:59", {5, 6}, time(23, 59)),
    ],
)
def test_parse_every(text: str, days: set[int], at: time) -> None:
    every = parse_every(text)
    assert (every.days, every.at) == (days, at)


@pytest.mark.parametrize(
    "bad", ["", "daily", "daily 24:00", "daily 2", "mon thu 18:30", "xyz 10:00", "weekly 03:00",
            "hourly 00:15", "daily 02:00 extra"],
)  # fmt: skip
def test_parse_every_refuses(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_every(bad)


@pytest.mark.parametrize(
    ("every", "after", "until", "expected"),
    [
        # Winter: 02:00 Berlin = 01:00 UTC; summer: 00:00 UTC.
        ("daily 02:00", "2026-01-10 00:00", "2026-01-11 12:00",
         ["2026-01-10 01:00", "2026-01-11 01:00"]),
        # Spring forward (2026-03-29 02:00 → 03:00): 02:30 does not exist that night and
        # runs at 03:30 CEST (01:30 UTC); the night before it is 01:30 UTC too (CET).
        ("daily 02:30", "2026-03-27 12:00", "2026-03-30 12:00",
         ["2026-03-28 01:30", "2026-03-29 01:30", "2026-03-30 00:30"]),
        # Fall back (2026-10-25 03:00 → 02:00): 02:30 exists twice and runs once, first.
        ("daily 02:30", "2026-10-24 12:00", "2026-10-26 12:00",
         ["2026-10-25 00:30", "2026-10-26 01:30"]),
        # A time away from the change moves by an hour in UTC, once a day all the same.
        ("daily 18:00", "2026-10-24 00:00", "2026-10-26 00:00",
         ["2026-10-24 16:00", "2026-10-25 17:00"]),
        ("mon,thu 18:30", "2026-11-23 00:00", "2026-11-30 23:59",
         ["2026-11-23 17:30", "2026-11-26 17:30", "2026-11-30 17:30"]),
        ("weekly sun 03:00", "2026-10-18 00:00", "2026-11-01 12:00",
         ["2026-10-18 01:00", "2026-10-25 02:00", "2026-11-01 02:00"]),
        # (after, until]: an occurrence exactly at ``after`` was handled already.
        ("daily 02:00", "2026-01-10 01:00", "2026-01-11 01:00", ["2026-01-11 01:00"]),
    ],
)  # fmt: skip
def test_occurrences_in_local_time(every: str, after: str, until: str, expected: list[str]) -> None:
    found = occurrences(parse_every(every), utc(after), utc(until), BERLIN)
    assert found == [utc(e) for e in expected]


DAILY = parse_every("daily 02:30")
CREATED = utc("2026-03-01 00:00")


def one(since: datetime = CREATED, paused: bool = False) -> list[Schedule]:
    return [Schedule(7, DAILY, since, paused)]


@pytest.mark.parametrize(
    ("now", "last", "due", "skipped"),
    [
        # Before the first occurrence: nothing.
        ("2026-03-01 01:00", None, [], []),
        # At the occurrence and up to the grace period (1 h) after it: due.
        ("2026-03-01 01:30", None, ["2026-03-01 01:30"], []),
        ("2026-03-01 02:30", None, ["2026-03-01 01:30"], []),
        # Handled already (a restart a minute later): never twice.
        ("2026-03-01 01:31", "2026-03-01 01:30", [], []),
        ("2026-03-01 23:00", "2026-03-01 01:30", [], []),
        # Down longer than the grace period: skipped, and said so.
        ("2026-03-01 02:31", None, [], ["2026-03-01 01:30"]),
        # Down for three nights, back just after the fourth: three skipped, one due.
        ("2026-03-05 01:45", "2026-03-01 01:30",
         ["2026-03-05 01:30"], ["2026-03-02 01:30", "2026-03-03 01:30", "2026-03-04 01:30"]),
        # The DST night: 02:30 does not exist; due at 03:30 CEST = 01:30 UTC, once.
        ("2026-03-29 01:30", "2026-03-28 01:30", ["2026-03-29 01:30"], []),
        ("2026-03-29 02:00", "2026-03-29 01:30", [], []),
        # The next night is in summer time: 00:30 UTC.
        ("2026-03-30 00:31", "2026-03-29 01:30", ["2026-03-30 00:30"], []),
        # Fall back: 02:30 happens twice, the schedule runs at the first only.
        ("2026-10-25 00:30", "2026-10-24 00:30", ["2026-10-25 00:30"], []),
        ("2026-10-25 01:30", "2026-10-25 00:30", [], []),
        ("2026-10-25 03:00", "2026-10-25 00:30", [], []),
    ],
)  # fmt: skip
def test_plan(now: str, last: str | None, due: list[str], skipped: list[str]) -> None:
    history = {7: utc(last)} if last else {}
    decided = plan(one(), utc(now), history, tz=BERLIN)
    assert decided.due == [(7, utc(d)) for d in due]
    assert decided.skipped == [(7, utc(s)) for s in skipped]
    handled = (due or skipped)[-1:] if (due or skipped) else []
    if due:
        handled = due[-1:]
    assert decided.handled == ({7: utc(handled[0])} if handled else {})


def test_restart_loop_creates_each_occurrence_once() -> None:
    """Run the decision every 30 s for three days across the DST night; the only state
    is what the caller persists (``last``), so any run may follow a restart: each night
    is due exactly once."""
    last: dict[int, datetime] = {}
    runs: list[datetime] = []
    now = utc("2026-03-27 12:00")
    while now < utc("2026-03-30 12:00"):
        decided = plan(one(since=utc("2026-03-27 12:00")), now, last, tz=BERLIN)
        runs += [when for _, when in decided.due]
        assert not decided.skipped
        last.update(decided.handled)
        now += timedelta(seconds=30)
    assert runs == [utc("2026-03-28 01:30"), utc("2026-03-29 01:30"), utc("2026-03-30 00:30")]


def test_paused_and_resumed() -> None:
    assert plan(one(paused=True), utc("2026-03-01 01:30"), {}, tz=BERLIN).due == []
    # Resumed at 01:40 (since = resume time): the 01:30 occurrence is not run.
    resumed = one(since=utc("2026-03-01 01:40"))
    assert plan(resumed, utc("2026-03-01 01:45"), {}, tz=BERLIN).due == []
    assert plan(resumed, utc("2026-03-02 01:30"), {}, tz=BERLIN).due == [
        (7, utc("2026-03-02 01:30"))
    ]


def test_grace_and_several_schedules() -> None:
    other = Schedule(8, parse_every("mon,thu 18:30"), CREATED)
    decided = plan(
        [*one(), other], utc("2026-03-02 18:00"), {7: utc("2026-03-02 01:30")},
        tz=BERLIN, grace=timedelta(minutes=30),
    )  # fmt: skip
    assert decided.due == [(8, utc("2026-03-02 17:30"))]
    late = plan([other], utc("2026-03-02 18:01"), {}, tz=BERLIN, grace=timedelta(minutes=30))
    assert late.due == [] and late.skipped == [(8, utc("2026-03-02 17:30"))]
