"""Recurring captures and restores: list (next run, last result), add, pause, resume,
delete.  The appliance's Housekeeping loop creates the jobs when they are due."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from webui import backend, backups, errors, library
from webui.security import actor, require

bp = Blueprint("schedules", __name__, url_prefix="/schedules", template_folder="templates")
errors.install(bp)


@bp.route("")
@require("view")
def index() -> Any:
    return render_template(
        "schedules.html",
        schedules=backups.schedules(),
        hosts=backend.hosts(),
        rooms=backend.rooms(),
        images=library.image_names(),
    )


@bp.post("/add")
@require("job.start")
def add() -> Any:
    s = backups.add_schedule(request.form.to_dict(), actor())
    flash(f"Schedule {s['id']} added: {s['action']} {s['image']} every {s['every']}.", "info")
    return redirect(url_for("schedules.index"))


def _change(sid: int, verb: str) -> Any:
    backups.change_schedule(sid, verb, actor())
    flash(f"Schedule {sid}: {verb}d." if verb != "pause" else f"Schedule {sid} paused.", "info")
    return redirect(url_for("schedules.index"))


@bp.post("/<int:schedule_id>/pause")
@require("job.start")
def pause(schedule_id: int) -> Any:
    return _change(schedule_id, "pause")


@bp.post("/<int:schedule_id>/resume")
@require("job.start")
def resume(schedule_id: int) -> Any:
    return _change(schedule_id, "resume")


@bp.post("/<int:schedule_id>/delete")
@require("job.start")
def delete(schedule_id: int) -> Any:
    return _change(schedule_id, "delete")
