"""A machine's own page: its timeline (the last events of its boots) and its history
(every job it had), with the history as CSV."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template

from appliance.machines import history, timeline
from webui import backend, errors
from webui.security import require

bp = Blueprint("hostpage", __name__, url_prefix="/machines", template_folder="templates")
errors.install(bp)


def _host(ref: str) -> Any:
    return backend.slate().inventory.get_host(ref)  # NotFound → 404 with the reason


@bp.get("/<mac>")
@require("view")
def show(mac: str) -> Any:
    host = _host(mac)
    conn = backend.slate().db()
    events = list(reversed(timeline.events(conn, host.mac)))  # newest first on the page
    rows = list(reversed(history.host_history(conn, host.mac)))
    return render_template("machine.html", host=host, events=events, rows=rows)


@bp.get("/<mac>/history.csv")
@require("view")
def history_csv(mac: str) -> Any:
    host = _host(mac)
    text = history.to_csv(history.host_history(backend.slate().db(), host.mac))
    name = f"{host.name}-history.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
