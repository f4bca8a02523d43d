"""Machines and rooms: search, register (also the "seen" ones), CSV import, Wake-on-LAN."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from appliance import audit
from webui import backend, errors, wol
from webui.security import actor, require

bp = Blueprint("machines", __name__, url_prefix="/machines", template_folder="templates")
errors.install(bp)


def register_host(form: Any, mac: str | None = None) -> Any:
    """Register one machine from form fields (mac, name, room, disk_hint)."""
    return backend.slate().inventory.add_host(
        mac or form.get("mac", ""),
        form.get("name", "").strip(),
        actor=actor(),
        room=form.get("room", "").strip() or None,
        disk_hint=form.get("disk_hint", "").strip(),
    )


def send_wol(macs: list[str], what: str) -> int:
    address, port = wol.target(current_app.config, backend.slate().settings)
    sent = wol.wake(macs, address, port)
    audit.record(backend.slate().db(), actor(), "host.wake", what, f"{sent} to {address}:{port}")
    return sent


@bp.route("")
@require("view")
def index() -> Any:
    q = request.args.get("q", "")
    room = request.args.get("room") or None
    return render_template(
        "machines.html",
        hosts=backend.hosts(q, room),
        rooms=backend.rooms(),
        seen=backend.seen(),
        q=q,
        room=room,
    )


@bp.post("/add")
@require("host.edit")
def add() -> Any:
    host = register_host(request.form)
    flash(f"Registered {host.name} ({host.mac}).", "info")
    return redirect(url_for("machines.index"))


@bp.post("/seen/<mac>/register")
@require("host.edit")
def register_seen(mac: str) -> Any:
    host = register_host(request.form, mac=mac)
    flash(f"Registered {host.name} ({host.mac}).", "info")
    return redirect(request.referrer or url_for("machines.index"))


@bp.post("/import")
@require("host.edit")
def import_csv() -> Any:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        text = upload.read().decode("utf-8", "replace")
    else:
        text = request.form.get("csv", "")
    added = backend.slate().inventory.import_csv(text, actor=actor())
    flash(f"Imported {len(added)} machines.", "info")
    return redirect(url_for("machines.index"))


@bp.post("/<mac>/edit")
@require("host.edit")
def edit(mac: str) -> Any:
    form = request.form
    host = backend.slate().inventory.update_host(
        mac,
        actor=actor(),
        name=form.get("name", "").strip() or None,
        room=form.get("room"),
        ip=form.get("ip"),
        disk_hint=form.get("disk_hint"),
    )
    flash(f"Saved {host.name} ({host.mac}).", "info")
    return redirect(request.referrer or url_for("machines.index"))


@bp.post("/<mac>/delete")
@require("host.delete")
def delete(mac: str) -> Any:
    host = backend.slate().inventory.remove_host(mac, actor=actor())
    flash(f"Deleted {host.name}.", "info")
    return redirect(url_for("machines.index"))


@bp.post("/<mac>/wake")
@require("host.edit")
def wake(mac: str) -> Any:
    host = backend.slate().inventory.get_host(mac)
    send_wol([host.mac], host.name)
    flash(f"Wake-on-LAN sent to {host.name}.", "info")
    return redirect(request.referrer or url_for("machines.index"))


@bp.post("/rooms/add")
@require("host.edit")
def add_room() -> Any:
    name = request.form.get("name", "").strip()
    backend.slate().inventory.add_room(name, actor=actor(), note=request.form.get("note", ""))
    flash(f"Room {name} added.", "info")
    return redirect(url_for("machines.index"))


@bp.post("/rooms/<name>/wake")
@require("host.edit")
def wake_room(name: str) -> Any:
    macs = [h.mac for h in backend.slate().inventory.hosts(name)]
    sent = send_wol(macs, f"room {name}")
    flash(f"Wake-on-LAN sent to {sent} machines of {name}.", "info")
    return redirect(request.referrer or url_for("machines.index"))
