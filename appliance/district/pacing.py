"""When and how fast a school fetches: a daily window and a bandwidth cap.

A window is ``HH:MM-HH:MM`` in the appliance's local time (``18:00-06:00`` wraps past
midnight); a fetch checks it before each chunk it reads, so one that runs past the end
stops within a chunk and resumes in the next window with what it stored.  The cap is
one :class:`appliance.pacing.TokenBucket` (of :data:`BURST` bytes) that every range
read from the library passes, shared by the fetch's parallel readers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from appliance.errors import SlateError, UsageError

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
BURST = 256 * 1024  # bytes a capped read may take at once


class OutsideWindow(SlateError):
    """The fetch stopped (or did not start): the time is outside its window."""


@dataclass(frozen=True)
class Window:
    start: int  # minutes after midnight
    end: int

    @classmethod
    def parse(cls, text: str) -> Window | None:
        """``HH:MM-HH:MM`` → a window; "" → None (any time)."""
        text = text.strip()
        if not text:
            return None
        m = _WINDOW.match(text)
        if m is None:
            raise UsageError(
                f"{text!r} is not a window",
                hint="write HH:MM-HH:MM in 24-hour time, e.g. 18:00-06:00 (past midnight)",
            )
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        if (h1, m1) == (h2, m2):
            raise UsageError(f"{text!r} is empty", hint="leave --window out for any time")
        return cls(h1 * 60 + m1, h2 * 60 + m2)

    def __str__(self) -> str:
        return f"{self.start // 60:02}:{self.start % 60:02}-{self.end // 60:02}:{self.end % 60:02}"

    def open_at(self, when: datetime) -> bool:
        now = when.hour * 60 + when.minute
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # wraps past midnight
