"""Administration of notifications: webhooks and e-mail, and their delivery log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance.db import transaction
from appliance.notify import outbox
from appliance.notify.events import EVENTS, Event
from appliance.timestamps import utc_now
from webui import errors
from webui.security import actor, conn, require

bp = Blueprint("notify", __name__, url_prefix="/admin/notify", template_folder="templates")
errors.install(bp)


def _events(form: Any) -> str:
    return ",".join(e for e in EVENTS if form.get(f"event-{e}"))


@bp.route("", endpoint="page")
@require("user.admin")
def page() -> Any:
    rows = [t.public() for t in outbox.targets(conn())]
    return render_template(
        "notify.html", rows=rows, log=outbox.delivery_log(conn(), 200), events=EVENTS
    )


@bp.post("/webhook")
@require("user.admin")
def add_webhook() -> Any:
    form = request.form
    target = outbox.add_webhook(
        conn(), form.get("url", "").strip(), form.get("secret", ""), _events(form), actor()
    )
    flash(f"Webhook {target.id} to {target.address} added.", "info")
    return redirect(url_for("notify.page"))


@bp.post("/email")
@require("user.admin")
def add_email() -> Any:
    form = request.form
    target = outbox.add_email(
        conn(),
        form.get("to", "").strip(),
        form.get("smtp", "").strip(),
        _events(form),
        actor(),
        user=form.get("user", "").strip(),
        password=form.get("password", ""),
        starttls=bool(form.get("starttls")),
    )
    flash(f"E-mail {target.id} to {target.address} added.", "info")
    return redirect(url_for("notify.page"))


@bp.post("/<int:target_id>/delete")
@require("user.admin")
def delete(target_id: int) -> Any:
    outbox.remove(conn(), target_id, actor())
    flash(f"Notification target {target_id} removed.", "info")
    return redirect(url_for("notify.page"))


@bp.post("/<int:target_id>/test")
@require("user.admin")
def test(target_id: int) -> Any:
    target = outbox.get(conn(), target_id)
    event = Event("done", "test", utc_now(), {"test": True, "by": actor()})
    with transaction(conn()):
        outbox.enqueue(conn(), event, only=target.id)
    flash(f"A test event is queued for {target.address}; see the log below.", "info")
    return redirect(url_for("notify.page"))
