"""The one UTC time stamp Slate stores and shows: ``YYYY-MM-DDTHH:MM:SSZ`` (the format
the schema's ``strftime('%Y-%m-%dT%H:%M:%SZ','now')`` defaults write too)."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    return datetime.now(UTC).strftime(FORMAT)
