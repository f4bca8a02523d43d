"""Backups as the console shows them: promotion and keep marks, retention (with what it
would remove now), and recurring schedules — over the appliance's public API."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from appliance import audit
from appliance.backups import prune
from appliance.backups.schedules import Schedules
from appliance.errors import UsageError
from appliance.machines import identity
from appliance.store import policy as policies
from appliance.store.lineage import history
from webui.backend import slate

MARKS = {
    "promote": ("candidate", False),
    "unpromote": ("candidate", True),
    "keep": ("keep", True),
    "unkeep": ("keep", False),
}


def mark(name: str, version: str, verb: str, actor: str) -> bool:
    """Promote / unpromote / keep / unkeep one version, audited; True when it changed."""
    what, on = MARKS[verb]
    changed: bool = slate().store.set_mark(name, version, what, on)
    if changed:
        audit.record(slate().db(), actor, f"image.{verb}", f"{name}@{version}")
    return changed


def image_backups(name: str) -> dict[str, Any]:
    """Policy, history (what each version shares with the one before) and what retention
    would remove if it ran now."""
    store = slate().store
    store.resolve(name)  # NotFound with the store's hint
    pol = policies.get(store.db(), name)
    planned = prune.plan(store, name)
    return {
        "policy": pol.to_dict() | {"rules": pol.describe()},
        "history": history(store, name),
        "retention": {"keep": planned.keep, "remove": planned.remove, "applies": pol.retains},
    }


def _count(value: Any, field: str) -> int | None:
    if value is None or value == "" or value == "none":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{field} must be a number of versions, or empty") from None


def set_policy(name: str, data: dict[str, Any], actor: str) -> dict[str, Any]:
    """Change auto-promote and the keep counts given in ``data`` (others stay)."""
    conn = slate().db()
    slate().store.resolve(name)
    current = policies.get(conn, name)
    changes: dict[str, Any] = {}
    if "auto_promote" in data:
        changes["auto_promote"] = data["auto_promote"] in (True, "1", "on", "true", "yes")
    for f in policies.KEEP_FIELDS:
        if f in data:
            changes[f] = _count(data[f], f)
    updated = policies.put(conn, dataclasses.replace(current, **changes))
    audit.record(conn, actor, "image.policy", name,
                 ", ".join(f"{k}={v}" for k, v in changes.items()))  # fmt: skip
    if "identity" in data:  # restores write each machine's identity (docs/identity.md)
        on = data["identity"] in (True, "1", "on", "true", "yes")
        identity.set_image_enabled(conn, name, on, actor=actor)
    return {**updated.to_dict(), "identity": identity.image_enabled(conn, name)}


def prune_now(name: str, actor: str) -> dict[str, Any]:
    return prune.prune(slate().store, name, actor=actor).to_dict()


# -- schedules ---------------------------------------------------------------------------
def _schedules() -> Schedules:
    return Schedules(slate().db(), slate().layout)


def schedules() -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [s.to_dict(now) for s in _schedules().all()]


def add_schedule(data: dict[str, Any], actor: str) -> dict[str, Any]:
    action = str(data.get("action") or "")
    target = str(data.get("target") or "")
    host = str(data.get("host") or "").strip() or None
    room = str(data.get("room") or "").strip() or None
    if target:  # the page's one select: "host:MAC" or "room:NAME"
        kind, _, value = target.partition(":")
        host, room = (value, None) if kind == "host" else (None, value)
    s = _schedules().add(
        action=action,
        image=str(data.get("image") or "").strip(),
        every=str(data.get("every") or ""),
        host=host,
        room=room,
        wake=data.get("wake") in (True, "1", "on", "true", "yes"),
        note=str(data.get("note") or ""),
        actor=actor,
    )
    return s.to_dict()


def change_schedule(sid: int, verb: str, actor: str) -> dict[str, Any]:
    ss = _schedules()
    if verb == "delete":
        return ss.remove(sid, actor=actor).to_dict()
    return ss.set_paused(sid, verb == "pause", actor=actor).to_dict()
