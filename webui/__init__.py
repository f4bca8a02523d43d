"""Slate's web console: pages for lab technicians and the JSON API behind them.

Plugged into the appliance's Flask app through the ``slate.http`` entry point
(``webui:init_app``); the appliance never imports this package.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.wrappers import Response

from appliance.secrets_file import random_secret, read_or_create
from webui import csrf, security
from webui.throttle import Throttle
from webui.verifier import Verifier

# Content-Security-Policy: everything comes from this server; no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def init_app(app: Flask) -> None:
    """Register the console's blueprints, CSRF, login and the session secret."""
    from webui import (
        admin,
        api,
        auth,
        dashboard,
        hostpage,
        images,
        jobs,
        machines,
        metrics,
        notify,
        reimage,
        rooms,
        schedules,
    )

    layout = app.extensions["slate"].layout
    if not app.secret_key:
        app.secret_key = load_secret(layout.console_secret)
    app.config.setdefault("SESSION_COOKIE_NAME", "slate_session")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.session_interface = security.SessionInterface()
    app.extensions["slate.console.throttle"] = Throttle()
    app.extensions["slate.console.verifier"] = Verifier()
    blueprints = [auth.bp, dashboard.bp, images.bp, machines.bp, reimage.bp, jobs.bp, admin.bp,
                  schedules.bp, rooms.bp, notify.bp, metrics.bp, hostpage.bp]  # fmt: skip
    from webui import hooks as hook_page  # issue 13: post-restore hooks, kept partitions

    blueprints.append(hook_page.bp)
    from webui import hardware  # issue 14: hardware facts, disk health, power

    blueprints.append(hardware.bp)
    from webui import district  # issue 30: the district view

    blueprints.append(district.bp)
    for bp in [*blueprints, api.bp]:
        app.register_blueprint(bp)
    names = frozenset(bp.name for bp in [*blueprints, api.bp])
    csrf.init_app(app, names)
    app.jinja_env.globals["current_user"] = security.current_user
    app.jinja_env.filters.update(_filters())

    @app.after_request
    def _headers(resp: Response) -> Response:
        if request.blueprint in names:
            resp.headers.setdefault("Content-Security-Policy", CSP)
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("X-Frame-Options", "DENY")
            resp.headers.setdefault("Referrer-Policy", "same-origin")
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp


def load_secret(path: Path) -> bytes:
    """The session-signing secret, created (0600) in the data dir on first start."""
    return read_or_create(path, random_secret(32))


def _filters() -> dict[str, Any]:
    from appliance.units import human_bytes

    def bytes_(n: Any) -> str:
        return human_bytes(float(n or 0))

    def duration(s: Any) -> str:
        if s is None or s == "":
            return "-"
        s = int(float(s))
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

    def pct(p: Any) -> str:
        return f"{float(p or 0):g}"  # 25.0 → "25", as the live updates print it

    return {"bytes": bytes_, "duration": duration, "pct": pct}
