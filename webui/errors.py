"""How the console shows an appliance error: JSON for the API, a message for pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from appliance.errors import Conflict, IllegalTransition, NotFound, SlateError, UsageError
from webui.security import wants_json

STATUS: tuple[tuple[type[SlateError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (IllegalTransition, 409),
    (UsageError, 400),
)


def status_of(exc: SlateError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def _slate_error(exc: SlateError) -> Any:
    status = status_of(exc)
    if wants_json():
        return jsonify({"error": exc.message, "hint": exc.hint or ""}), status
    text = exc.message + (f" — {exc.hint}" if exc.hint else "")
    referrer = request.referrer or ""
    if request.method == "POST" and referrer.startswith(request.host_url):
        flash(text, "error")
        return redirect(referrer)
    return render_template("error.html", status=status, message=text), status


def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    if wants_json():
        return jsonify({"error": exc.description or exc.name}), status
    return render_template("error.html", status=status, message=exc.description), status


def install(bp: Blueprint) -> None:
    bp.register_error_handler(SlateError, _slate_error)
    bp.register_error_handler(HTTPException, _http_error)
