"""What an image reference names: pure functions, no store, no clock of their own.

    NAME                    the newest promoted version
    NAME@20261125T162431Z   exactly that version (a candidate too)
    NAME@2026-11-20         the newest promoted version made on or before that day
    NAME@2026-11-20T18:00   ... at or before that minute (``:SS``, ``Z`` or ``+01:00`` too)
    NAME@-3d                ... at or before 3 days ago (``m``, ``h``, ``d``, ``w``)

A date or time without a zone is the appliance's local time.  A time covers the unit it
is written to: ``@2026-11-20`` includes the whole day, ``@…T18:00`` the whole minute
(a technician who says "as it was on Tuesday" means Tuesday's last backup).  A version's
time is its id (the UTC time the appliance committed it), never a client's clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from appliance.errors import UsageError
from appliance.formats.names import is_image_name, is_version

_RELATIVE = re.compile(r"^-(\d{1,5})([mhdw])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}$")
_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
HINT = (
    "write NAME (newest promoted version), NAME@VERSION (e.g. win11@20261125T162431Z), "
    "NAME@2026-11-20, NAME@2026-11-20T18:00 or NAME@-3d"
)


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: exactly one of ``version`` / ``until`` / neither (newest)."""

    image: str
    version: str | None = None
    until: datetime | None = None  # UTC, inclusive

    @property
    def exact(self) -> bool:
        return self.version is not None


def version_time(version: str) -> datetime:
    """``20261125T162431Z`` / ``20261125T162431.5Z`` → that instant (UTC)."""
    base, _, frac = version.rstrip("Z").partition(".")
    when = datetime.strptime(base, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return when + timedelta(microseconds=int(frac.ljust(6, "0")) if frac else 0)


def localize(naive: datetime, tz: tzinfo | None) -> datetime:
    """A wall-clock time in ``tz`` (None: this machine's zone) → an aware datetime."""
    return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()


def parse_ref(text: str, now: datetime, tz: tzinfo | None = None) -> ImageRef:
    """``text`` → :class:`ImageRef`; UsageError when it is not a reference."""
    name, sep, sel = text.strip().partition("@")
    if not is_image_name(name) or (sep and not sel):
        raise UsageError(f"{text!r} is not an image reference", hint=HINT)
    if not sep:
        return ImageRef(name)
    if is_version(sel):
        return ImageRef(name, version=sel)
    until = _until(sel, now, tz)
    if until is None:
        raise UsageError(f"{text!r} is not an image reference", hint=HINT)
    return ImageRef(name, until=until)


def _until(sel: str, now: datetime, tz: tzinfo | None) -> datetime | None:
    rel = _RELATIVE.match(sel)
    if rel:
        return now.astimezone(UTC) - timedelta(**{_UNITS[rel[2]]: int(rel[1])})
    zone: tzinfo | None = None
    body = sel
    if sel.endswith("Z"):
        body, zone = sel[:-1], UTC
    else:
        off = re.search(r"[+-]\d{2}:\d{2}$", sel)
        if off and "T" in sel:
            body = sel[: off.start()]
            zone = datetime.fromisoformat("2000-01-01T00:00" + off[0]).tzinfo
    if _DATE.match(body) and zone is None:
        span = timedelta(days=1)
    elif _MINUTE.match(body):
        span = timedelta(minutes=1)
    elif _SECOND.match(body):
        span = timedelta(seconds=1)
    else:
        return None
    try:
        start = datetime.fromisoformat(body.replace(" ", "T"))
    except ValueError:
        return None
    if span == timedelta(days=1):
        # The end of that local day: the start of the next (a DST day has 23 or 25 h).
        end = localize(start + span, zone or tz)
    else:
        end = localize(start, zone or tz) + span
    return end.astimezone(UTC) - timedelta(microseconds=1)


def select(versions: Iterable[str], ref: ImageRef) -> str | None:
    """The version ``ref`` names among ``versions`` (ids; for a non-exact reference,
    only the promoted ones), or None."""
    ids = sorted(versions, key=version_time)
    if ref.version is not None:
        return ref.version if ref.version in ids else None
    if ref.until is not None:
        ids = [v for v in ids if version_time(v) <= ref.until]
    return ids[-1] if ids else None


def check_spec(text: str) -> str:
    """Validate the syntax of a reference that is resolved later (a room's rule)."""
    parse_ref(text, datetime.now(UTC))
    return text
