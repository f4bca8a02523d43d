"""A machine's hardware facts, its disks' health as its last job read them, and power
requests for a machine waiting in Slate's boot environment (issue 14)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance.errors import UsageError
from appliance.machines import facts as machine_facts
from appliance.machines import power as machine_power
from webui import backend, errors
from webui.security import actor, require

bp = Blueprint("hardware", __name__, url_prefix="/machines", template_folder="templates")
errors.install(bp)


@bp.get("/<mac>/hardware")
@require("view")
def show(mac: str) -> Any:
    a = backend.slate()
    host = a.inventory.get_host(mac)
    conn = a.db()
    return render_template(
        "machine_hardware.html",
        host=host,
        found=machine_facts.facts_of(conn, host.mac),
        health=machine_facts.health_of_host(conn, host.mac),
        power=machine_power.power_state(conn, host.mac),
        active=a.jobs.active_for(host.mac),
    )


@bp.post("/<mac>/power")
@require("job.start")
def power(mac: str) -> Any:
    command = request.form.get("command", "")
    if command not in machine_power.POWER_COMMANDS:
        raise UsageError(f"{command!r} is not a power command", hint="reboot or poweroff")
    host = backend.slate().inventory.get_host(mac)
    job = machine_power.request_power(backend.slate().db(), host.mac, command, actor=actor())
    flash(
        f"{host.name}: {command} requested (job {job}); it takes it within a few seconds.", "info"
    )
    return redirect(url_for("hardware.show", mac=host.mac))


@bp.post("/<mac>/register")
@require("job.start")
def register(mac: str) -> Any:
    job = backend.slate().jobs.create("register", mac, actor=actor(), options={"after": "reboot"})
    flash(
        f"Register job {job.id} created: boot {job.host_name} from the network; it reports its"
        " hardware and disk health, writes nothing, and waits here for Reboot or Power off.",
        "info",
    )
    return redirect(url_for("hardware.show", mac=job.host))


@bp.post("/rooms/<name>/power")
@require("job.start")
def power_room(name: str) -> Any:
    command = request.form.get("command", "")
    result = machine_power.request_power_room(backend.slate().db(), name, command, actor=actor())
    left = f"; not waiting: {', '.join(result['not_waiting'])}" if result["not_waiting"] else ""
    flash(f"{command} requested for {len(result['requested'])} machine(s) of {name}{left}.", "info")
    return redirect(request.referrer or url_for("machines.index"))
