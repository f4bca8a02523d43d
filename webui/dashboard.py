"""The dashboard: running jobs (live), recent results, machines seen but not registered."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from appliance.roomcast import read_status
from webui import backend, errors
from webui.security import require

bp = Blueprint(
    "dashboard",
    __name__,
    static_folder="static",
    static_url_path="/console/static",
    template_folder="templates",
)
errors.install(bp)


@bp.route("/")
@require("view")
def index() -> Any:
    return render_template(
        "dashboard.html",
        active=backend.active_jobs(),
        ended=backend.ended_jobs(10),
        seen=backend.seen(),
        rooms=backend.rooms(),
        roomcast=[s for s in read_status(backend.slate().layout.home, 30) if not s.get("ended")],
    )
