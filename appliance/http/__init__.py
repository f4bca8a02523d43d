"""The HTTP service: boot scripts, the boot environment, the client API, chunk serving.

``create_app(layout, settings)`` builds the Flask app; ``app.extensions["slate"]`` is the
:class:`~appliance.http.context.HttpContext` (the services it serves from, handed in by
:class:`appliance.server.Appliance`, or made standalone for tests).  Plugins (the web
console) join through the ``slate.http`` entry-point group: each is called with the
app.  The app runs under :class:`appliance.http.server.HttpServer` (cheroot + sendfile,
see docs/http.md).
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from flask import Flask, Response, jsonify, request

from appliance.config import Layout
from appliance.errors import (
    Conflict,
    IllegalTransition,
    IntegrityError,
    NotFound,
    PeerError,
    SlateError,
    UsageError,
)
from appliance.http.context import HttpContext
from appliance.settings import Settings

log = logging.getLogger(__name__)
PLUGIN_GROUP = "slate.http"
# Request bodies: small by default (login, forms, JSON); the client API raises the
# limit for a chunk upload and a manifest only (appliance.http.client_api).
SMALL_BODY = 1024 * 1024

_STATUS: list[tuple[type[SlateError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (IllegalTransition, 409),
    (UsageError, 400),
    (PeerError, 400),
    (IntegrityError, 400),
]


def create_app(
    layout: Layout,
    settings: Settings | None = None,
    *,
    plugins: bool = True,
    context: HttpContext | None = None,
) -> Flask:
    """``context``: the composition root's (``slate serve``); None = a standalone one
    made from ``layout`` and ``settings`` (tests, ``python -m appliance.http``)."""
    from appliance.http import boot_views, client_api, machine_api, room_api, store_files

    app = Flask("appliance.http")
    app.config["MAX_CONTENT_LENGTH"] = SMALL_BODY
    app.extensions["slate"] = context if context is not None else HttpContext(layout, settings)
    app.register_blueprint(boot_views.bp)
    app.register_blueprint(client_api.bp)
    app.register_blueprint(room_api.bp)
    app.register_blueprint(machine_api.bp)
    app.register_blueprint(store_files.bp)
    app.register_error_handler(SlateError, _slate_error)
    if plugins:
        load_plugins(app)
    return app


def _slate_error(exc: SlateError) -> Response | tuple[str, int]:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    if not request.path.startswith(("/api/", "/store/")):
        return f"{exc.message}\n", status
    body = {"error": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    response = jsonify(body)
    response.status_code = status
    return response


def load_plugins(app: Flask, group: str = PLUGIN_GROUP) -> list[str]:
    """Call every ``group`` entry point with ``app``; return the names loaded.

    A plugin that fails to load is logged and skipped: the boot service must keep
    answering machines even if the web console is broken.
    """
    loaded = []
    for ep in entry_points(group=group):
        try:
            ep.load()(app)
        except Exception:
            log.exception(
                "HTTP plugin %s (%s) failed to load; continuing without it", ep.name, ep.value
            )
            continue
        loaded.append(ep.name)
    return loaded
