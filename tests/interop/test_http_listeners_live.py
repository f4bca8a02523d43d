"""Both listeners for real on loopback (cheroot): the console over HTTPS with its own
certificate (checked against the fingerprint), HSTS and Secure cookies; the PXE
listener answering machines and 404 for the console."""

from __future__ import annotations

import hashlib
import http.client
import ssl

from appliance.config import Layout
from appliance.http import create_app
from appliance.http.listeners import ensure_certificate, fingerprint
from appliance.http.server import HttpServer

MAC = "52:54:00:00:00:01"


def test_console_over_tls_and_pxe_listener_without_console(home):
    app = create_app(Layout(home))
    app.extensions["slate"].inventory.add_host(MAC, "pc1", actor="t")
    cert, key = ensure_certificate(home)
    pxe = HttpServer(app, "127.0.0.1", 0, scope="pxe")
    console = HttpServer(app, "127.0.0.1", 0, scope="console", tls=(cert, key), threads=4)
    with pxe, console:
        assert console.url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", console.port, context=ctx, timeout=10)
        conn.request("GET", "/login")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and b"<form" in body
        assert resp.getheader("Strict-Transport-Security", "").startswith("max-age=")
        assert "Secure" in resp.getheader("Set-Cookie", "")
        der = conn.sock.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest().upper() == fingerprint(cert).replace(":", "")
        conn.close()

        plain = http.client.HTTPConnection("127.0.0.1", pxe.port, timeout=10)
        for path, status in [("/login", 404), ("/api/v1/me", 404), (f"/boot/{MAC}.ipxe", 200)]:
            plain.request("GET", path)
            got = plain.getresponse()
            got.read()
            assert got.status == status, path
        plain.close()
