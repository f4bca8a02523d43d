"""Job times: now, and the ``--at`` values a job may be scheduled with (UTC text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appliance.errors import UsageError
from appliance.timestamps import FORMAT, utc_now

__all__ = ["parse_when", "utc_now"]


def parse_when(text: str, now: datetime | None = None) -> str:
    """``--at`` value → UTC ``YYYY-MM-DDTHH:MM:SSZ``.

    Accepts ISO 8601 (``2026-11-25T18:30``, with or without zone; no zone = this
    machine's local time), ``HH:MM`` (the next such local time) and ``+N{m,h,d}``.
    """
    now = now or datetime.now(UTC)
    text = text.strip()
    try:
        if text.startswith("+") and text[-1:] in "mhd" and text[1:-1].isdigit():
            unit = {"m": "minutes", "h": "hours", "d": "days"}[text[-1]]
            when = now + timedelta(**{unit: int(text[1:-1])})
        elif len(text) == 5 and text[2] == ":":
            local = now.astimezone()
            hour, minute = int(text[:2]), int(text[3:])
            when = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if when <= local:
                when += timedelta(days=1)
        else:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.astimezone()
    except ValueError as exc:
        raise UsageError(
            f"{text!r} is not a time",
            hint="write 2026-11-25T18:30 (local), 2026-11-25T17:30Z (UTC), 18:30 or +2h",
        ) from exc
    return when.astimezone(UTC).strftime(FORMAT)
