"""The district view (issue 30, docs/district.md "The district view"): read-only, what
`slate library status` prints, for each library this appliance knows."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from appliance.district import libraries, status
from appliance.errors import SlateError
from webui import errors
from webui.security import appliance, conn, require

bp = Blueprint("district", __name__, url_prefix="/district", template_folder="templates")
errors.install(bp)


@bp.route("")
@require("view")
def index() -> Any:
    layout = appliance().layout
    found = []
    for lib in libraries.all_(conn()):
        try:
            found.append({"name": lib.name, "url": lib.url, "rows": status.district(lib, layout),
                          "error": ""})  # fmt: skip
        except SlateError as exc:  # the engine down, the WAN down: said, not a 500
            found.append({"name": lib.name, "url": lib.url, "rows": [], "error": exc.message})
    return render_template("district.html", libraries=found)
