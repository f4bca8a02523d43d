"""What each listener serves: the PXE listener only the machines' routes (every console
route 404, whatever the method), the console listener adds HSTS over TLS; the console's
self-signed certificate and its fingerprint."""

from __future__ import annotations

import hashlib
import ssl

import pytest
from werkzeug.test import Client

from appliance.config import Layout
from appliance.http import create_app
from appliance.http.listeners import ConsoleOnly, PxeOnly, ensure_certificate, fingerprint

MAC = "52:54:00:00:00:01"


@pytest.fixture
def app(home):
    app = create_app(Layout(home))
    assert "dashboard" in app.blueprints, "the console plugin did not load"
    app.extensions["slate"].inventory.add_host(MAC, "pc1", actor="t")
    return app


CONSOLE_PATHS = [
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/machines"),
    ("POST", "/machines/add"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/jobs"),
    ("DELETE", "/api/v1/hosts/52:54:00:00:00:01"),
    ("PUT", "/api/v1/me"),  # a console route, with a method it does not take
    ("GET", "/console/static/console.css"),  # the console's own assets too
]


@pytest.mark.parametrize(("method", "path"), CONSOLE_PATHS)
def test_console_routes_are_404_on_the_pxe_listener(app, method, path):
    resp = Client(PxeOnly(app)).open(path, method=method)
    assert resp.status_code == 404


def test_machine_routes_are_served_on_the_pxe_listener(app):
    pxe = Client(PxeOnly(app))
    assert pxe.get(f"/boot/{MAC}.ipxe").status_code == 200
    assert pxe.get("/api/client/v1/job").status_code == 401  # the client API, needs a token
    assert pxe.get("/store/manifests/win11/20261125T100000Z.json").status_code == 401
    assert pxe.post("/api/client/v1/job").status_code == 405  # its own route, wrong method
    assert pxe.get("/nothing/here").status_code == 404


def test_the_console_assets_exist_off_the_pxe_listener(app):
    assert Client(app).get("/console/static/console.css").status_code == 200


def test_the_console_listener_serves_the_console_with_hsts_over_tls(app):
    console = Client(ConsoleOnly(app))
    resp = console.get("/login", base_url="https://127.0.0.1")
    assert resp.status_code == 200
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in resp.headers["Set-Cookie"]
    plain = console.get("/login")
    assert "Strict-Transport-Security" not in plain.headers  # HSTS only means something on TLS


def test_certificate_made_once_with_its_fingerprint(home):
    cert, key = ensure_certificate(home, ["127.0.0.1", "slate.lab"])
    assert key.stat().st_mode & 0o777 == 0o600
    again = ensure_certificate(home)
    assert again == (cert, key) and cert.read_bytes() == again[0].read_bytes()
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    fp = fingerprint(cert)
    assert fp.replace(":", "") == hashlib.sha256(der).hexdigest().upper()
    assert len(fp.split(":")) == 32
    ctx = ssl.create_default_context(cafile=str(cert))  # a valid certificate for its names
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "Slate console"),),)
