"""The room view: every seat of a room, its job, phase, progress, rate, ETA and how it
restores (roomcast: multicast or HTTP and why), the room's totals — live; and the room's
standing "when done" for its restore jobs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from appliance.roomstatus import room_status
from webui import backend, errors
from webui.security import actor, require

bp = Blueprint("rooms", __name__, url_prefix="/rooms", template_folder="templates")
errors.install(bp)


def status(name: str) -> dict[str, Any]:
    app = backend.slate()
    return room_status(app.jobs, app.layout.home, name)


@bp.get("/<name>")
@require("view")
def show(name: str) -> Any:
    room = backend.slate().inventory.get_room(name)
    return render_template("room.html", status=status(name), room=room)


@bp.post("/<name>/after")
@require("host.edit")
def set_after(name: str) -> Any:
    """The room's "when done": reboot, poweroff, or none (each job's own, reboot)."""
    room = backend.slate().inventory.set_room_after(
        name, request.form.get("after", ""), actor=actor()
    )
    said = {"reboot": "reboot", "poweroff": "shut down"}.get(room.after or "", "no setting")
    flash(f"Room {room.name}, when a restore is done: {said}.", "info")
    return redirect(url_for("rooms.show", name=room.name))


@bp.get("/<name>/status")
@require("view")
def status_json(name: str) -> Any:
    return jsonify(status(name))
