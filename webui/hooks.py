"""Post-restore hooks and kept partitions (issue 13; docs/hooks.md): the admin's page.
Everything here changes what later restores do, so it needs ``hook.edit`` (admin)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance import hooks
from appliance.errors import UsageError
from webui import backend, errors, library
from webui.security import actor, conn, require

bp = Blueprint("hooks", __name__, url_prefix="/admin/hooks", template_folder="templates")
errors.install(bp)


@bp.route("", endpoint="page")
@require("hook.edit")
def page() -> Any:
    order = {s: i for i, s in enumerate(hooks.SCOPES)}
    found = sorted(hooks.hooks(conn()), key=lambda h: (order[h.scope], h.target, h.id))
    return render_template(
        "hooks.html",
        hooks=found,
        rules=hooks.keep_rules(conn()),
        hosts=backend.hosts(),
        rooms=backend.rooms(),
        images=library.image_names(),
    )


def _number(field: str, default: int | None = None) -> int:
    text = request.form.get(field, "").strip()
    if not text and default is not None:
        return default
    if not text.isdigit():
        raise UsageError(f"{field} must be a whole number, not {text!r}")
    return int(text)


def _scope_target() -> tuple[str, str]:
    scope, _, target = request.form.get("target", "").partition(":")
    if not scope or not target:
        raise UsageError("choose an image, a room or a machine", hint="pick one from the list")
    return scope, target


@bp.post("/add")
@require("hook.edit")
def add() -> Any:
    scope, target = _scope_target()
    upload = request.files.get("script")
    if upload is None or not upload.filename:
        raise UsageError("choose the script file to upload")
    name = request.form.get("name", "").strip() or upload.filename
    hook = hooks.add_hook(conn(), scope, target, name, upload.read(hooks.MAX_SCRIPT + 1),
                          timeout=_number("timeout", hooks.DEFAULT_TIMEOUT),
                          actor=actor())  # fmt: skip
    flash(f"Hook {hook.name} added for {hook.scope} {hook.target}.", "info")
    return redirect(url_for("hooks.page"))


@bp.post("/<int:hook_id>/delete")
@require("hook.edit")
def delete(hook_id: int) -> Any:
    hook = hooks.remove_hook(conn(), hook_id, actor=actor())
    flash(f"Hook {hook.name} of {hook.scope} {hook.target} removed.", "info")
    return redirect(url_for("hooks.page"))


@bp.post("/keep/add")
@require("hook.edit")
def keep_add() -> Any:
    scope, target = _scope_target()
    rule = hooks.add_keep(conn(), scope, target, _number("partition"), actor=actor())
    flash(f"Restores of {rule.scope} {rule.target} keep partition {rule.partition}.", "info")
    return redirect(url_for("hooks.page"))


@bp.post("/keep/<int:rule_id>/delete")
@require("hook.edit")
def keep_delete(rule_id: int) -> Any:
    rule = hooks.remove_keep(conn(), rule_id, actor=actor())
    flash(f"{rule.scope} {rule.target} keeps partition {rule.partition} no more.", "info")
    return redirect(url_for("hooks.page"))
