"""Job history, one job with its client's log lines, cancel and retry."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from appliance.jobs import scope as jobscope
from webui import backend, errors
from webui.security import actor, require

bp = Blueprint("jobs", __name__, url_prefix="/jobs", template_folder="templates")
errors.install(bp)


@bp.route("")
@require("view")
def index() -> Any:
    host = request.args.get("host") or None
    return render_template("jobs.html", jobs=backend.all_jobs(500, host=host), host=host)


@bp.route("/<int:job_id>")
@require("view")
def show(job_id: int) -> Any:
    a = backend.slate()
    job = backend.job_dict(a.jobs.get(job_id))
    bound = jobscope.binding(a.db(), job_id)
    return render_template("job.html", job=job, log=a.jobs.log_lines(job_id), bound=bound)


@bp.post("/<int:job_id>/cancel")
@require("job.start")
def cancel(job_id: int) -> Any:
    backend.slate().jobs.cancel(job_id, actor=actor(), reason=request.form.get("reason", ""))
    flash(f"Job {job_id} cancelled.", "info")
    return redirect(url_for("jobs.show", job_id=job_id))


@bp.post("/<int:job_id>/retry")
@require("job.start")
def retry(job_id: int) -> Any:
    job = backend.slate().jobs.retry(job_id, actor=actor())
    flash(f"Job {job_id} retried as job {job.id}.", "info")
    return redirect(url_for("jobs.show", job_id=job.id))
