"""CSRF protection for every form and every cookie-authenticated API call.

A small own implementation rather than Flask-WTF: the console has no WTForms forms,
and the whole mechanism is one random per-session secret compared in constant time.
Forms carry it as ``csrf_token``; the console's JavaScript sends it as ``X-CSRF-Token``.
Requests authenticated with ``Authorization: Bearer`` carry no cookie credentials a
third-party page could ride on, so they need no CSRF token.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def token() -> str:
    """This session's CSRF token (created on first use)."""
    value = session.get("csrf")
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        session["csrf"] = value
    return value


def rotate() -> None:
    """A new token, e.g. at login, so a token seen before login is worthless after it."""
    session["csrf"] = secrets.token_urlsafe(32)


def is_bearer() -> bool:
    return request.headers.get("Authorization", "").startswith("Bearer ")


def init_app(app: Flask, blueprints: frozenset[str]) -> None:
    """Check the token on unsafe requests to ``blueprints`` (the console's own)."""

    @app.before_request
    def _check_csrf() -> None:
        if request.method not in UNSAFE or request.blueprint not in blueprints:
            return
        if is_bearer():
            return
        if request.path.startswith("/api/") and "user" not in session:
            return  # no cookie credentials at all: the API answers 401, not a CSRF error
        sent = request.headers.get(HEADER) or request.form.get(FIELD, "")
        expected = session.get("csrf")
        # Bytes: compare_digest refuses str that is not ASCII (a TypeError, so a 500).
        if not isinstance(expected, str) or not hmac.compare_digest(
            sent.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
        ):
            abort(
                400,
                description="the form has expired or did not come from this console "
                "(CSRF check failed); reload the page and try again",
            )

    app.jinja_env.globals["csrf_token"] = token
