"""Retention as a pure function: last N, GFS daily/weekly/monthly, protected versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.backups.retention import Rules, plan

BERLIN = ZoneInfo("Europe/Berlin")


def nightly(first: str, days: int, hour: int = 1) -> list[str]:
    """One version a night at ``hour``:00 UTC for ``days`` days from ``first``."""
    start = datetime.fromisoformat(first).replace(hour=hour, tzinfo=UTC)
    return [(start + timedelta(days=i)).strftime("%Y%m%dT%H%M%SZ") for i in range(days)]


# 60 nights: 2026-10-01 … 2026-11-29 (Thu 1 Oct is in ISO week 40).
SIXTY = nightly("2026-10-01", 60)


@pytest.mark.parametrize(
    ("rules", "kept"),
    [
        (Rules(), SIXTY),  # no rule: keep everything
        (Rules(last=3), SIXTY[-3:]),
        (Rules(last=0), []),
        (Rules(daily=2), SIXTY[-2:]),
        # The newest of each of the last 3 ISO weeks: Sun 29 Nov, Sun 22 Nov, Sun 15 Nov.
        (Rules(weekly=3), ["20261115T010000Z", "20261122T010000Z", "20261129T010000Z"]),
        # The newest of each month: 29 Nov, 31 Oct.
        (Rules(monthly=5), ["20261031T010000Z", "20261129T010000Z"]),
        (
            Rules(last=1, daily=3, weekly=2, monthly=2),
            ["20261031T010000Z", "20261122T010000Z", "20261127T010000Z", "20261128T010000Z",
             "20261129T010000Z"],
        ),
    ],
)  # fmt: skip
def test_rules(rules: Rules, kept: list[str]) -> None:
    decided = plan(SIXTY, rules, tz=BERLIN)
    assert sorted(decided.keep) == sorted(kept)
    assert decided.remove == [v for v in SIXTY if v not in kept]


def test_reasons_and_protection() -> None:
    protected = {SIXTY[0]: "marked keep", SIXTY[10]: "used by room lab1 (win@2026-10-11)"}
    decided = plan(SIXTY, Rules(last=2, daily=3), protected, tz=BERLIN)
    assert decided.keep[SIXTY[-1]] == ["last 2", "daily 3"]
    assert decided.keep[SIXTY[-3]] == ["daily 3"]
    assert decided.keep[SIXTY[0]] == ["marked keep"]
    assert decided.keep[SIXTY[10]] == ["used by room lab1 (win@2026-10-11)"]
    assert len(decided.remove) == 60 - 5
    # A protected version that is not (or no more) a version changes nothing.
    assert plan(SIXTY[:2], Rules(last=1), {"20200101T000000Z": "x"}).remove == [SIXTY[0]]


def test_days_are_local_days() -> None:
    # 23:30 UTC on 2026-11-20 is already 21 Nov in Berlin: with the 21 Nov 01:00 UTC
    # version both fall on the same local day, and only the newer one is the daily.
    versions = ["20261120T223000Z", "20261120T233000Z", "20261121T010000Z"]
    assert sorted(plan(versions, Rules(daily=2), tz=BERLIN).keep) == versions[::2]
    assert sorted(plan(versions, Rules(daily=2), tz=UTC).keep) == versions[1:]


def test_several_a_day_and_order_of_input() -> None:
    day = ["20261120T080000Z", "20261120T120000Z", "20261120T160000.5Z", "20261120T160000Z"]
    decided = plan(list(reversed(day)), Rules(daily=1, last=2), tz=UTC)
    assert sorted(decided.keep) == ["20261120T160000.5Z", "20261120T160000Z"]
    assert decided.remove == ["20261120T080000Z", "20261120T120000Z"]  # oldest first
