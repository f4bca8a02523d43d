"""Point-in-time references: NAME, NAME@VERSION, NAME@DATE[THH:MM], NAME@-3d (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.errors import UsageError
from appliance.refs import ImageRef, parse_ref, select, version_time

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Backups of one machine: nightly at 02:00 Berlin (01:00 UTC), one at 18:00 UTC on the 20th.
VERSIONS = [
    "20261118T010000Z",
    "20261119T010000Z",
    "20261120T010000Z",
    "20261120T180000Z",
    "20261121T010000Z",
    "20261122T010000Z",
    "20261122T010000.5Z",
]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("lab", "20261122T010000.5Z"),  # newest
        ("lab@20261119T010000Z", "20261119T010000Z"),  # exact
        ("lab@2026-11-20", "20261120T180000Z"),  # the whole local day
        ("lab@2026-11-20T19:00", "20261120T180000Z"),  # 19:00 Berlin = 18:00 UTC: at
        ("lab@2026-11-20T18:59", "20261120T010000Z"),  # ... one minute before: before
        ("lab@2026-11-20T18:00Z", "20261120T180000Z"),  # a UTC time covers its minute
        ("lab@2026-11-20T17:59:59Z", "20261120T010000Z"),
        ("lab@2026-11-20T19:00+01:00", "20261120T180000Z"),
        ("lab@2026-11-20 02:00", "20261120T010000Z"),  # a space for the T
        ("lab@2026-11-20T01:59", "20261119T010000Z"),
        ("lab@-3d", "20261122T010000.5Z"),  # 2026-11-22 12:00 UTC
        ("lab@-4d", "20261121T010000Z"),
        ("lab@-1w", "20261118T010000Z"),
        ("lab@-84h", "20261121T010000Z"),  # 2026-11-21 24:00
        ("lab@-10080m", "20261118T010000Z"),
        ("lab@2026-11-17", None),  # before the first version
        ("lab@2026-11-17T12:00", None),
        ("lab@20261101T000000Z", None),  # an exact id that does not exist
    ],
)
def test_selection(ref: str, expected: str | None) -> None:
    assert select(VERSIONS, parse_ref(ref, NOW, BERLIN)) == expected


def test_a_date_covers_a_23_hour_day() -> None:
    # 2026-03-29 in Berlin (clocks forward) ends at 22:00 UTC, not 23:00.
    ref = parse_ref("lab@2026-03-29", NOW, BERLIN)
    assert ref.until == datetime(2026, 3, 29, 21, 59, 59, 999999, tzinfo=UTC)
    day = ["20260329T215959Z", "20260329T220000Z"]
    assert select(day, ref) == "20260329T215959Z"
    # 2026-10-25 (clocks back) has 25 hours: ends at 23:00 UTC.
    ref = parse_ref("lab@2026-10-25", NOW, BERLIN)
    assert ref.until == datetime(2026, 10, 25, 22, 59, 59, 999999, tzinfo=UTC)


def test_parsed_forms() -> None:
    assert parse_ref("lab", NOW) == ImageRef("lab")
    assert parse_ref("lab@20261119T010000Z", NOW).exact
    assert not parse_ref("lab@-3d", NOW).exact
    assert version_time("20261122T010000.5Z") == datetime(2026, 11, 22, 1, 0, 0, 500000, UTC)


@pytest.mark.parametrize(
    "bad",
    ["", "@", "lab@", "lab@latest", "lab@yesterday", "lab@-3", "lab@3d", "lab@-3y",
     "lab@2026-13-01", "lab@2026-11-31", "lab@2026-11-20T25:00", "lab@2026-11-20Z",
     "a/b@-1d", "..@-1d", "lab@2026-11-20T18", "lab@@-1d"],
)  # fmt: skip
def test_not_references(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(bad, NOW, BERLIN)
