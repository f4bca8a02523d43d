"""Administration: users and roles, and the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance import users
from webui import backend, errors
from webui.security import actor, conn, require

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
errors.install(bp)


@bp.route("/users", endpoint="users")
@require("user.admin")
def users_page() -> Any:
    rows = [(u, len(users.tokens(conn(), u.name))) for u in users.list_users(conn())]
    return render_template("users.html", rows=rows, roles=users.ROLES)


@bp.post("/users/add")
@require("user.admin")
def add_user() -> Any:
    form = request.form
    user = users.add(
        conn(),
        form.get("name", "").strip(),
        form.get("role", ""),
        form.get("password", ""),
        actor(),
    )
    flash(f"User {user.name} ({user.role}) created.", "info")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>/role")
@require("user.admin")
def set_role(name: str) -> Any:
    users.set_role(conn(), name, request.form.get("role", ""), actor())
    flash(f"{name} is now {request.form.get('role')}.", "info")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>/password")
@require("user.admin")
def set_password(name: str) -> Any:
    users.set_password(conn(), name, request.form.get("password", ""), actor())
    flash(f"Password of {name} set; their sessions are logged out.", "info")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>/delete")
@require("user.admin")
def delete_user(name: str) -> Any:
    users.remove(conn(), name, actor())
    flash(f"User {name} deleted.", "info")
    return redirect(url_for("admin.users"))


@bp.route("/audit")
@require("audit")
def audit() -> Any:
    return render_template("audit.html", rows=backend.audit_log(500))
