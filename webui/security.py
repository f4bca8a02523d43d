"""Who is asking: the session cookie (browser) or an API token (``Authorization: Bearer``),
and what their role allows.  Every console view is wrapped in :func:`require`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response

from appliance import users
from appliance.http.context import HttpContext
from appliance.users import User

F = TypeVar("F", bound=Callable[..., Any])


def appliance() -> HttpContext:
    """The HTTP context (``.layout``, ``.store``, ``.db()``, ``.inventory``, ``.jobs``)."""
    context: HttpContext = current_app.extensions["slate"]
    return context


def conn() -> Any:
    return appliance().db()


def wants_json() -> bool:
    return request.path.startswith("/api/")


def current_user() -> User | None:
    if "user" not in g:
        g.user, g.via = _authenticate()
    user: User | None = g.user
    return user


def _authenticate() -> tuple[User | None, str]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        # A bearer header is the only credential considered: no fallback to the cookie.
        return users.user_for_token(conn(), header[7:].strip()), "token"
    name, epoch = session.get("user"), session.get("epoch")
    if not isinstance(name, str):
        return None, "session"
    try:
        user = users.get(conn(), name)
    except users.NotFound:
        return None, "session"
    # A password or role change bumps the epoch: older sessions stop working.
    return (user if user.epoch == epoch else None), "session"


def actor() -> str:
    """How the audit log names the person behind this request."""
    user = current_user()
    via = "api" if g.get("via") == "token" else "web"
    return f"{via}:{user.name}" if user else f"{via}:?"


def log_in(user: User) -> None:
    session.clear()
    session.permanent = True
    session["user"] = user.name
    session["epoch"] = user.epoch
    g.user, g.via = user, "session"


def deny(status: int, message: str) -> Response:
    if wants_json():
        resp = jsonify({"error": message})
        resp.status_code = status
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="slate"'
        return resp
    if status == 401:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    body = render_template("error.html", status=status, message=message)
    return Response(body, status=status, mimetype="text/html")


def require(permission: str) -> Callable[[F], F]:
    """Refuse anonymous requests (401/login page) and roles without ``permission`` (403)."""

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return deny(401, "log in first (or send an API token as Authorization: Bearer)")
            if not user.can(permission):
                return deny(403, f"your role ({user.role}) may not do this ({permission})")
            return view(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


class SessionInterface(SecureCookieSessionInterface):
    """Session cookie marked Secure whenever the request came over https — directly, or
    through a TLS-terminating reverse proxy when ``SLATE_TRUST_PROXY`` is set (only then
    is its ``X-Forwarded-Proto`` believed)."""

    def get_cookie_secure(self, app: Any) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE") or request.is_secure:
            return True
        trusted = app.config.get("SLATE_TRUST_PROXY") or os.environ.get("SLATE_TRUST_PROXY")
        return bool(trusted) and request.headers.get("X-Forwarded-Proto") == "https"
