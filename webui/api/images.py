"""The image library: list, show, note, delete, verify."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from appliance import audit
from webui import backend, library
from webui.api import body, bp
from webui.security import actor, require


@bp.get("/images")
@require("view")
def list_images() -> Any:
    return jsonify(library.images())


@bp.get("/images/<name>")
@require("view")
def get_image(name: str) -> Any:
    return jsonify(library.image(name))


@bp.patch("/images/<name>/<version>")
@require("image.edit")
def set_note(name: str, version: str) -> Any:
    library.set_note(name, version, str(body().get("note", "")))
    audit.record(backend.slate().db(), actor(), "image.note", f"{name}@{version}")
    return jsonify({"image": name, "version": version})


@bp.delete("/images/<name>/<version>")
@require("image.edit")
def delete_version(name: str, version: str) -> Any:
    library.remove(name, version)
    audit.record(backend.slate().db(), actor(), "image.rm", f"{name}@{version}")
    return jsonify({"deleted": f"{name}@{version}"})


@bp.post("/images/<name>/<version>/verify")
@require("image.edit")
def verify_version(name: str, version: str) -> Any:
    status = library.start_verify(name, version)
    audit.record(backend.slate().db(), actor(), "image.verify", f"{name}@{version}")
    return jsonify(status), 202


@bp.get("/images/<name>/<version>/verify")
@require("view")
def verify_result(name: str, version: str) -> Any:
    return jsonify(library.verify_status(name, version))
