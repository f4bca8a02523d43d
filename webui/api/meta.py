"""Who am I, users (admin), the audit log, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from appliance import users
from webui import backend
from webui.api import body, bp, field
from webui.api.openapi import document
from webui.security import actor, conn, current_user, require


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(document())


@bp.get("/me")
@require("view")
def me() -> Any:
    user = current_user()
    assert user is not None
    perms = sorted(users.PERMISSIONS[user.role])
    return jsonify({"name": user.name, "role": user.role, "permissions": perms})


@bp.get("/users")
@require("user.admin")
def list_users() -> Any:
    return jsonify([{"name": u.name, "role": u.role} for u in users.list_users(conn())])


@bp.post("/users")
@require("user.admin")
def add_user() -> Any:
    data = body()
    user = users.add(
        conn(), field(data, "name"), field(data, "role"), str(data.get("password", "")), actor()
    )
    return jsonify({"name": user.name, "role": user.role}), 201


@bp.delete("/users/<name>")
@require("user.admin")
def delete_user(name: str) -> Any:
    users.remove(conn(), name, actor())
    return jsonify({"deleted": name})


@bp.get("/audit")
@require("audit")
def audit_log() -> Any:
    return jsonify(backend.audit_log(500))
