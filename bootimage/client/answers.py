"""What the client makes of the appliance's answers, shared by the client API
(:mod:`bootimage.client.api`) and the chunk fetcher (:mod:`bootimage.client.fetcher`):
which statuses are worth a retry, how long silence may last, and the error an answer
stands for."""

from __future__ import annotations

import json

from appliance.errors import Conflict, NotFound, PeerError, SlateError

TIMEOUT = 15.0  # a silent link is noticed after this long, then the request is retried
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def answer_error(method: str, path: str, status: int, data: bytes) -> SlateError:
    """The error an answer the client cannot fix by retrying stands for, with the
    appliance's own message and hint."""
    try:
        body = json.loads(data)
        message, hint = str(body.get("error", "")), body.get("hint")
    except (ValueError, AttributeError):
        message, hint = data[:200].decode(errors="replace"), None
    text = f"the appliance refused {method} {path} (HTTP {status}): {message}"
    if status == 404:
        return NotFound(text, hint=hint)
    if status == 409:
        return Conflict(text, hint=hint or "the job has ended or was cancelled")
    return PeerError(text, hint=hint)
