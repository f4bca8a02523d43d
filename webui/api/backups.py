"""Backups: versions with what they share, promotion and keep marks, retention, and
recurring schedules."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from webui import backups
from webui.api import body, bp
from webui.security import actor, require


@bp.get("/images/<name>/backups")
@require("view")
def image_backups(name: str) -> Any:
    return jsonify(backups.image_backups(name))


@bp.patch("/images/<name>/policy")
@require("image.edit")
def set_policy(name: str) -> Any:
    return jsonify(backups.set_policy(name, body(), actor()))


@bp.post("/images/<name>/prune")
@require("image.edit")
def prune(name: str) -> Any:
    return jsonify(backups.prune_now(name, actor()))


def _mark(name: str, version: str, verb: str) -> Any:
    changed = backups.mark(name, version, verb, actor())
    return jsonify({"image": name, "version": version, verb: True, "changed": changed})


@bp.post("/images/<name>/<version>/promote")
@require("image.promote")
def promote(name: str, version: str) -> Any:
    return _mark(name, version, "promote")


@bp.delete("/images/<name>/<version>/promote")
@require("image.promote")
def unpromote(name: str, version: str) -> Any:
    return _mark(name, version, "unpromote")


@bp.post("/images/<name>/<version>/keep")
@require("image.promote")
def keep(name: str, version: str) -> Any:
    return _mark(name, version, "keep")


@bp.delete("/images/<name>/<version>/keep")
@require("image.promote")
def unkeep(name: str, version: str) -> Any:
    return _mark(name, version, "unkeep")


@bp.get("/schedules")
@require("view")
def list_schedules() -> Any:
    return jsonify(backups.schedules())


@bp.post("/schedules")
@require("job.start")
def add_schedule() -> Any:
    return jsonify(backups.add_schedule(body(), actor())), 201


@bp.delete("/schedules/<int:schedule_id>")
@require("job.start")
def delete_schedule(schedule_id: int) -> Any:
    return jsonify(backups.change_schedule(schedule_id, "delete", actor()))


@bp.post("/schedules/<int:schedule_id>/pause")
@require("job.start")
def pause_schedule(schedule_id: int) -> Any:
    return jsonify(backups.change_schedule(schedule_id, "pause", actor()))


@bp.post("/schedules/<int:schedule_id>/resume")
@require("job.start")
def resume_schedule(schedule_id: int) -> Any:
    return jsonify(backups.change_schedule(schedule_id, "resume", actor()))
