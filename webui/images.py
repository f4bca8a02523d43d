"""The image library: images, versions (sizes, sharing, disks, partitions), note,
delete (refused while a job uses the version), verify."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance import audit
from webui import backend, errors, library
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
    return render_template("image.html", image=library.image(name))


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
