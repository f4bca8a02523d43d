"""Event kinds, the JSON payload of one event, and how webhooks sign it.

A webhook receiver checks ``X-Slate-Signature: sha256=<hex>``, the HMAC-SHA256 of the
raw request body under the webhook's own secret, before trusting anything in it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import UsageError

# job ended failed · job ended done · every job of a room's batch ended · a disk the
# client refused to write because of its health (reported by the client, issue 14) ·
# seats of a room session dropped forged datagrams on its group (issue 29).
EVENTS = ("failed", "done", "room-done", "disk-refused", "forged-traffic")
SIGNATURE_HEADER = "X-Slate-Signature"
EVENT_HEADER = "X-Slate-Event"
# Attempt n (1-based) failed → wait BACKOFF_BASE * 2**(n-1) seconds, capped; give up
# after MAX_ATTEMPTS (about 8.5 hours in all).
BACKOFF_BASE = 30.0
BACKOFF_CAP = 3600.0
MAX_ATTEMPTS = 12


@dataclass(frozen=True)
class Event:
    kind: str
    subject: str  # the host or room name the event is about
    at: str  # UTC, YYYY-MM-DDTHH:MM:SSZ
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENTS:
            raise ValueError(f"unknown event kind {self.kind!r}")


def parse_events(text: str) -> tuple[str, ...]:
    """``failed,done,room-done`` → the kinds, checked; empty = all of them."""
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in EVENTS]
    if unknown:
        raise UsageError(
            f"unknown event {', '.join(map(repr, unknown))}", hint=f"one of {', '.join(EVENTS)}"
        )
    return kinds or EVENTS


def payload(event: Event) -> bytes:
    """The body every webhook of ``event`` receives (stable key order)."""
    body = {"event": event.kind, "subject": event.subject, "at": event.at, **event.details}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def subject_line(event: Event) -> str:
    """The e-mail subject of ``event``."""
    what = {
        "failed": "job failed on",
        "done": "job done on",
        "room-done": "every job ended in room",
        "disk-refused": "disk refused for its health on",
        "forged-traffic": "forged traffic on the imaging VLAN from",
    }[event.kind]
    return f"[Slate] {what} {event.subject}"


def mail_text(event: Event) -> str:
    lines = [subject_line(event).removeprefix("[Slate] ").capitalize(), f"at {event.at}", ""]
    lines += [f"{k}: {v}" for k, v in sorted(event.details.items())]
    return "\n".join(lines) + "\n"


def sign(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: constant-time comparison with the expected signature."""
    return hmac.compare_digest(sign(secret, body), header)


def backoff(attempt: int) -> float | None:
    """Seconds to wait after failed attempt ``attempt`` (1-based); None = give up."""
    if attempt >= MAX_ATTEMPTS:
        return None
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
