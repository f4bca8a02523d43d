"""The image library: images, versions (sizes, sharing, disks, partitions), note,
delete (refused while a job uses the version), verify."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance import audit
from webui import backend, backups, errors, library
from webui.security import actor, require

bp = Blueprint("images", __name__, url_prefix="/images", template_folder="templates")
errors.install(bp)


@bp.route("")
@require("view")
def index() -> Any:
    return render_template("images.html", images=library.images())


@bp.route("/<name>")
@require("view")
def show(name: str) -> Any:
    return render_template(
        "image.html", image=library.image(name), backups=backups.image_backups(name)
    )


def _mark(name: str, version: str, verb: str, said: str) -> Any:
    changed = backups.mark(name, version, verb, actor())
    flash(f"{name}@{version} {said}." if changed else f"{name}@{version} already was.", "info")
    return redirect(url_for("images.show", name=name))


@bp.post("/<name>/<version>/promote")
@require("image.promote")
def promote(name: str, version: str) -> Any:
    return _mark(name, version, "promote", "promoted: NAME, rooms and rules may restore it")


@bp.post("/<name>/<version>/unpromote")
@require("image.promote")
def unpromote(name: str, version: str) -> Any:
    return _mark(name, version, "unpromote", "is a candidate again")


@bp.post("/<name>/<version>/keep")
@require("image.promote")
def keep(name: str, version: str) -> Any:
    return _mark(name, version, "keep", "is kept whatever retention says")


@bp.post("/<name>/<version>/unkeep")
@require("image.promote")
def unkeep(name: str, version: str) -> Any:
    return _mark(name, version, "unkeep", "is left to retention")


@bp.post("/<name>/policy")
@require("image.edit")
def policy(name: str) -> Any:
    form = {k: request.form.get(k, "") for k in ("keep_last", "keep_daily", "keep_weekly",
                                                 "keep_monthly")}  # fmt: skip
    form["auto_promote"] = request.form.get("auto_promote", "")
    backups.set_policy(name, form, actor())
    flash("Promotion and retention saved.", "info")
    return redirect(url_for("images.show", name=name))


@bp.post("/<name>/identity")
@require("image.edit")
def identity(name: str) -> Any:
    from appliance.machines import identity as ident

    backend.slate().store.resolve(name)  # an image that exists (NotFound: the 404 page)
    on = request.form.get("enabled", "") == "1"
    ident.set_image_enabled(backend.slate().db(), name, on, actor=actor())
    flash(f"Identity after a restore of {name}: {'on' if on else 'off'}.", "info")
    return redirect(url_for("images.show", name=name))


@bp.post("/<name>/prune")
@require("image.edit")
def prune(name: str) -> Any:
    result = backups.prune_now(name, actor())
    flash(f"Retention removed {len(result['removed'])} version(s).", "info")
    return redirect(url_for("images.show", name=name))


@bp.post("/<name>/<version>/note")
@require("image.edit")
def note(name: str, version: str) -> Any:
    library.set_note(name, version, request.form.get("note", ""))
    audit.record(backend.slate().db(), actor(), "image.note", f"{name}@{version}")
    flash("Note saved.", "info")
    return redirect(url_for("images.show", name=name))


@bp.post("/<name>/<version>/delete")
@require("image.edit")
def delete(name: str, version: str) -> Any:
    library.remove(name, version)
    audit.record(backend.slate().db(), actor(), "image.rm", f"{name}@{version}")
    flash(f"Deleted {name}@{version}. Run garbage collection to free its chunks.", "info")
    return redirect(url_for("images.index"))


@bp.post("/<name>/<version>/verify")
@require("image.edit")
def verify(name: str, version: str) -> Any:
    library.start_verify(name, version)
    audit.record(backend.slate().db(), actor(), "image.verify", f"{name}@{version}")
    flash(f"Verifying {name}@{version}: every chunk is read back and checked.", "info")
    return redirect(url_for("images.show", name=name))
