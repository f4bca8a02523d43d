"""The one parser of a request's JSON body: an object, or a clear error — raised as a
:class:`UsageError` for the console's API, answered with the client API's ``fail``."""

from __future__ import annotations

from typing import Any

from flask import request

from appliance.errors import UsageError
from appliance.http.auth import fail

MESSAGE = "the request body must be a JSON object"
HINT = "send Content-Type: application/json with an object body"


def _parsed() -> dict[str, Any] | None:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else None


def json_object() -> dict[str, Any]:
    """The body as a JSON object; :class:`UsageError` (400) for anything else."""
    data = _parsed()
    if data is None:
        raise UsageError(MESSAGE, hint=HINT)
    return data


def client_object() -> dict[str, Any]:
    """The body as a JSON object; a 400 answer in the client API's shape otherwise."""
    data = _parsed()
    if data is None:
        fail(400, MESSAGE, HINT)
    return data
