"""``GET /metrics`` on the console's side (a plugin route: 404 on the PXE listener).

Prometheus scrapes it with an API token of any role (``authorization: {credentials:
slt_…}`` in its scrape config); there is no anonymous access.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from appliance import metrics
from webui.security import appliance, conn, current_user

bp = Blueprint("metrics", __name__)


@bp.route("/metrics")
def scrape() -> Any:
    user = current_user()
    if user is None:
        resp = Response("send an API token: Authorization: Bearer slt_…\n", 401)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="slate"'
        resp.mimetype = "text/plain"
        return resp
    if not user.can("view"):
        return Response("your role may not read metrics\n", 403, mimetype="text/plain")
    text = metrics.render(conn(), appliance().layout.home)
    return Response(text, 200, content_type=metrics.CONTENT_TYPE)
