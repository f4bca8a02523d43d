"""Logging in and out, and one's own account (password, API tokens)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from appliance import audit, users
from appliance.errors import SlateError
from webui import csrf
from webui.security import actor, conn, current_user, log_in, require
from webui.throttle import Throttle

bp = Blueprint("auth", __name__, template_folder="templates")


def _throttle() -> Throttle:
    throttle: Throttle = current_app.extensions["slate.console.throttle"]
    return throttle


def _safe_next(target: str | None) -> str:
    """``?next=`` only when it is a path of this site: never an absolute URL an attacker
    could put there, nor any of the forms a browser reads as one (``//evil``,
    ``/\\evil``, ``/%5Cevil``, ``https:evil``, a tab or newline inside)."""
    if target and is_same_site_path(target):
        return target
    return url_for("dashboard.index")


def is_same_site_path(target: str) -> bool:
    for text in (target, unquote(target)):
        if not text.startswith("/") or text[1:2] in ("/", "\\"):
            return False
        if "\\" in text or any(ord(c) < 33 or ord(c) == 127 for c in text):
            return False
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return False
    return len(target) <= 2000


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    no_users = users.count(conn()) == 0
    if request.method == "GET":
        return render_template("login.html", no_users=no_users, next=request.args.get("next"))
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "?"
    wait = _throttle().wait_seconds(name, address)
    if wait > 0:  # no audit row per throttled try: the lockout itself was recorded
        flash(f"Too many failed logins. Try again in {int(wait // 60) + 1} minutes.", "error")
        return render_template("login.html", no_users=no_users), 429
    user = users.authenticate(conn(), name, password)
    if user is None:
        if _throttle().failed(name, address):
            audit.record(conn(), f"web:{name[:64] or '?'}", "login.throttled", address)
        flash("Wrong name or password.", "error")
        return render_template("login.html", no_users=no_users, next=request.form.get("next")), 401
    _throttle().succeeded(name, address)
    log_in(user)
    csrf.rotate()
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    from flask import session

    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account")
@require("view")
def account() -> Any:
    user = current_user()
    assert user is not None
    return render_template("account.html", tokens=users.tokens(conn(), user.name))


@bp.post("/account/password")
@require("view")
def change_password() -> Any:
    user = current_user()
    assert user is not None
    if users.authenticate(conn(), user.name, request.form.get("current", "")) is None:
        flash("The current password is wrong.", "error")
        return redirect(url_for("auth.account"))
    try:
        users.set_password(conn(), user.name, request.form.get("new", ""), actor())
    except SlateError as exc:
        flash(f"{exc.message}. {exc.hint or ''}", "error")
        return redirect(url_for("auth.account"))
    log_in(users.get(conn(), user.name))  # the epoch moved: keep this session, end others
    flash("Password changed; other sessions are logged out.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/tokens")
@require("view")
def new_token() -> Any:
    user = current_user()
    assert user is not None
    token = users.new_token(conn(), user.name, actor(), request.form.get("label", "").strip())
    return render_template("account.html", tokens=users.tokens(conn(), user.name), token=token)


@bp.post("/account/tokens/revoke")
@require("view")
def revoke_tokens() -> Any:
    user = current_user()
    assert user is not None
    n = users.revoke_tokens(conn(), user.name, actor())
    flash(f"{n} token(s) revoked.", "info")
    return redirect(url_for("auth.account"))
