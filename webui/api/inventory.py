"""Machines, rooms, seen machines, CSV import, Wake-on-LAN."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from appliance.errors import UsageError
from webui import backend
from webui.api import body, bp, field
from webui.machines import send_wol
from webui.security import actor, require


@bp.get("/hosts")
@require("view")
def list_hosts() -> Any:
    return jsonify(backend.hosts(request.args.get("q", ""), request.args.get("room") or None))


@bp.post("/hosts")
@require("host.edit")
def add_host() -> Any:
    data = body()
    host = backend.slate().inventory.add_host(
        field(data, "mac"),
        field(data, "name"),
        actor=actor(),
        room=data.get("room") or None,
        disk_hint=str(data.get("disk_hint") or ""),
    )
    return jsonify(host.to_dict()), 201


@bp.patch("/hosts/<mac>")
@require("host.edit")
def edit_host(mac: str) -> Any:
    data = body()

    def text(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    host = backend.slate().inventory.update_host(
        mac,
        actor=actor(),
        name=text("name"),
        room=text("room"),
        ip=text("ip"),
        disk_hint=text("disk_hint"),
    )
    return jsonify(host.to_dict())


@bp.delete("/hosts/<mac>")
@require("host.delete")
def delete_host(mac: str) -> Any:
    return jsonify(backend.slate().inventory.remove_host(mac, actor=actor()).to_dict())


@bp.post("/hosts/import")
@require("host.edit")
def import_hosts() -> Any:
    text = field(body(), "csv") if request.is_json else request.get_data(as_text=True)
    added = backend.slate().inventory.import_csv(text, actor=actor())
    return jsonify([h.to_dict() for h in added]), 201


@bp.post("/hosts/<mac>/wake")
@require("host.edit")
def wake_host(mac: str) -> Any:
    host = backend.slate().inventory.get_host(mac)
    return jsonify({"sent": send_wol([host.mac], host.name)})


@bp.get("/rooms")
@require("view")
def list_rooms() -> Any:
    return jsonify(backend.rooms())


@bp.post("/rooms")
@require("host.edit")
def add_room() -> Any:
    data = body()
    room = backend.slate().inventory.add_room(
        field(data, "name"), actor=actor(), note=str(data.get("note") or "")
    )
    return jsonify(room.to_dict()), 201


@bp.patch("/rooms/<name>")
@require("host.edit")
def edit_room(name: str) -> Any:
    """``{"after": "reboot" | "poweroff" | null}``: the room's "when done" (null: none)."""
    data = body()
    if "after" not in data:
        raise UsageError(
            "nothing to change: the body has no 'after'",
            hint='send {"after": "reboot"}, {"after": "poweroff"} or {"after": null}',
        )
    after = data["after"]
    if after is not None and not isinstance(after, str):
        raise UsageError(
            f"'after' must be a string or null, not {after!r}",
            hint='send {"after": "reboot"}, {"after": "poweroff"} or {"after": null}',
        )
    room = backend.slate().inventory.set_room_after(name, after, actor=actor())
    return jsonify(room.to_dict())


@bp.post("/rooms/<name>/wake")
@require("host.edit")
def wake_room(name: str) -> Any:
    macs = [h.mac for h in backend.slate().inventory.hosts(name)]
    return jsonify({"sent": send_wol(macs, f"room {name}")})


@bp.get("/seen")
@require("view")
def list_seen() -> Any:
    return jsonify(backend.seen())


@bp.post("/seen/<mac>/register")
@require("host.edit")
def register_seen(mac: str) -> Any:
    data = body()
    host = backend.slate().inventory.add_host(
        mac, field(data, "name"), actor=actor(), room=data.get("room") or None
    )
    return jsonify(host.to_dict()), 201
