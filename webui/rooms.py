"""The room view: every seat of a room, its job, phase, progress, rate, ETA and how it
restores (roomcast: multicast or HTTP and why), the room's totals — live."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template

from appliance.roomstatus import room_status
from webui import backend, errors
from webui.security import require

bp = Blueprint("rooms", __name__, url_prefix="/rooms", template_folder="templates")
errors.install(bp)


def status(name: str) -> dict[str, Any]:
    app = backend.slate()
    return room_status(app.jobs, app.layout.home, name)


@bp.get("/<name>")
@require("view")
def show(name: str) -> Any:
    return render_template("room.html", status=status(name))


@bp.get("/<name>/status")
@require("view")
def status_json(name: str) -> Any:
    return jsonify(status(name))
