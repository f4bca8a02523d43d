"""Reimage (choose a version, then machines or a room, confirm, start now or later) and
capture (a machine and an image name)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance.errors import UsageError
from appliance.jobs import parse_when
from webui import backend, errors, library
from webui.security import actor, require

bp = Blueprint("reimage", __name__, url_prefix="/reimage", template_folder="templates")
errors.install(bp)


def job_options(form: Any, *, capture: bool = False) -> dict[str, Any]:
    """When done (reboot / shut down) and the disk health override, from the form."""
    options: dict[str, Any] = {}
    after = form.get("after", "")
    if after and not capture:
        if after not in ("reboot", "poweroff"):
            raise UsageError(
                f"'when done' {after!r} is not known",
                hint="reboot or poweroff, or leave it empty for the room's setting",
            )
        options["after"] = after
    if form.get("ignore_disk_health"):
        options["ignore_disk_health"] = True
    return options


@bp.route("")
@require("job.start")
def choose() -> Any:
    return render_template(
        "reimage.html",
        versions=library.choices(),
        hosts=backend.hosts(),
        rooms=backend.rooms(),
        room=request.args.get("room", ""),
    )


def _chosen() -> tuple[str, list[str], str | None, str]:
    form = request.form
    image = form.get("image", "")
    asof = form.get("asof", "").strip()
    if image and asof:
        # "As it was on …": the version that time names, confirmed as an exact version.
        image = backend.slate().store.resolve_ref(f"{image.partition('@')[0]}@{asof}").ref
    return (
        image,
        form.getlist("mac"),
        form.get("room") or None,
        form.get("when", "").strip(),
    )


@bp.post("/confirm")
@require("job.start")
def confirm() -> Any:
    image, macs, room, when = _chosen()
    if not image:
        flash("Choose an image version first.", "error")
        return redirect(url_for("reimage.choose"))
    not_before = parse_when(when) if when else None
    rows = backend.targets(macs, room)
    return render_template(
        "reimage_confirm.html",
        image=image,
        rows=rows,
        room=room,
        when=when,
        not_before=not_before,
        blocked=any(r["busy"] for r in rows),
        room_after=room_after_label(rows),
    )


AFTER_WORDS = {"reboot": "reboot", "poweroff": "shut down"}


def room_after_label(rows: list[dict[str, Any]]) -> str:
    """The "When done" default: what the machines' rooms say (``slate room set-after``)."""
    inv = backend.slate().inventory
    said = {r["room"]: inv.get_room(r["room"]).after for r in rows if r.get("room")}
    if not any(said.values()):
        return "reboot (into the restored system)"
    if len(said) == 1 and len(rows) == sum(1 for r in rows if r.get("room")):
        room, after = next(iter(said.items()))
        return f"room {room}'s setting: {AFTER_WORDS[after or 'reboot']}"
    each = ", ".join(f"{k}: {AFTER_WORDS[v or 'reboot']}" for k, v in sorted(said.items()))
    return f"as each machine's room says ({each}; reboot without a room)"


@bp.post("/start")
@require("job.start")
def start() -> Any:
    image, macs, room, when = _chosen()
    options = job_options(request.form)
    jobs = backend.start_restore(macs, room, image, when, actor(), options=options)
    flash(f"Started {len(jobs)} restore job(s) of {image}.", "info")
    return redirect(url_for("dashboard.index"))


@bp.route("/capture", methods=["GET", "POST"])
@require("job.start")
def capture() -> Any:
    if request.method == "GET":
        return render_template("capture.html", hosts=backend.hosts(), images=library.image_names())
    job = backend.slate().jobs.capture(
        request.form.get("mac", ""),
        request.form.get("image", "").strip(),
        actor=actor(),
        note=request.form.get("note", ""),
        options=job_options(request.form, capture=True),
    )
    flash(f"Capture job {job.id} created: boot {job.host_name} from the network.", "info")
    return redirect(url_for("jobs.show", job_id=job.id))
