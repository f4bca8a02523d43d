"""The JSON API (``/api/v1``): everything the console does, for scripts and for the
console's own JavaScript.  Authenticate with ``Authorization: Bearer TOKEN`` (``slate
user token NAME``) or the console's session cookie plus an ``X-CSRF-Token`` header."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from appliance.errors import UsageError
from appliance.http.body import json_object
from webui import errors

bp = Blueprint("api", __name__, url_prefix="/api/v1")
errors.install(bp)


def body() -> dict[str, Any]:
    return json_object()


def field(data: dict[str, Any], name: str) -> str:
    """A required, non-empty string field of a JSON body."""
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(
            f"field {name!r} must be a non-empty string", hint="see /api/v1/openapi.json"
        )
    return value.strip()


from webui.api import backups, events, images, inventory, jobs, meta  # noqa: E402,F401
