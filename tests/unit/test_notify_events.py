"""The pure parts of notifications: payloads, signatures, the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from appliance.errors import UsageError
from appliance.notify.events import (
    EVENTS,
    MAX_ATTEMPTS,
    Event,
    backoff,
    mail_text,
    parse_events,
    payload,
    sign,
    subject_line,
    verify,
)


def test_payload_is_the_event_as_compact_sorted_json() -> None:
    event = Event("failed", "pc1", "2026-12-01T10:00:00Z", {"job": 7, "reason": "disk gone"})
    body = payload(event)
    assert body == (
        b'{"at":"2026-12-01T10:00:00Z","event":"failed","job":7,'
        b'"reason":"disk gone","subject":"pc1"}'
    )
    assert json.loads(body)["event"] == "failed"


def test_signature_is_hmac_sha256_of_the_body_with_the_secret() -> None:
    body = b'{"event":"done"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign("s3cret", body) == "sha256=" + expected
    assert verify("s3cret", body, "sha256=" + expected)
    assert not verify("other", body, "sha256=" + expected)
    assert not verify("s3cret", body + b" ", "sha256=" + expected)


def test_backoff_doubles_from_30_s_is_capped_at_an_hour_and_gives_up() -> None:
    schedule = [backoff(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert schedule[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert schedule[8:11] == [3600, 3600, 3600]
    assert schedule[-1] is None


def test_parse_events() -> None:
    assert parse_events("failed, done,room-done") == ("failed", "done", "room-done")
    assert parse_events("") == EVENTS
    with pytest.raises(UsageError, match="'bogus'"):
        parse_events("failed,bogus")


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        Event("exploded", "pc1", "2026-12-01T10:00:00Z")


def test_mail_of_a_refused_disk() -> None:
    event = Event("disk-refused", "pc3", "2026-12-01T10:00:00Z", {"disk": "WD-123"})
    assert subject_line(event) == "[Slate] disk refused for its health on pc3"
    assert mail_text(event) == (
        "Disk refused for its health on pc3\nat 2026-12-01T10:00:00Z\n\ndisk: WD-123\n"
    )
