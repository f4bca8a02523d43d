"""``is_tls_request()``: True in a handler when the request came over a TLS listener of
HttpServer, False over plain HTTP (whatever headers the client sends) and outside a
request.  Real listeners on 127.0.0.1, a real TLS handshake.  And each listener's
accept queue, read from the kernel."""

from __future__ import annotations

import http.client
import ssl
import subprocess
from pathlib import Path

from flask import Flask

from appliance.http.listeners import ensure_certificate, is_tls_request
from appliance.http.server import BACKLOG, HttpServer


def _app() -> Flask:
    app = Flask("appliance.test_tls")

    @app.get("/tls")
    def tls() -> str:
        return "yes" if is_tls_request() else "no"

    return app


def test_true_over_tls_false_over_plain_http(home):
    cert, key = ensure_certificate(home)
    app = _app()
    with (
        HttpServer(app, "127.0.0.1", 0, threads=2) as plain,
        HttpServer(app, "127.0.0.1", 0, threads=2, tls=(cert, key)) as tls,
    ):
        conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=10)
        # No header makes a plain request a TLS one.
        conn.request("GET", "/tls", headers={"slate.tls": "1", "X-Forwarded-Proto": "https"})
        assert conn.getresponse().read() == b"no"
        ctx = ssl.create_default_context(cafile=str(cert))
        sconn = http.client.HTTPSConnection("127.0.0.1", tls.port, timeout=10, context=ctx)
        sconn.request("GET", "/tls")
        assert sconn.getresponse().read() == b"yes"


def test_false_outside_a_request():
    assert is_tls_request() is False


def test_every_listener_queues_a_burst_of_connections(home):
    """The kernel's accept queue of a listener (``ss``'s Send-Q) is BACKLOG, not cheroot's
    default 5, with which 100 connections at once wait for SYN retransmits."""
    cert, key = ensure_certificate(home)
    with (
        HttpServer(_app(), "127.0.0.1", 0, threads=2) as plain,
        HttpServer(_app(), "127.0.0.1", 0, threads=2, tls=(cert, key)) as tls,
    ):
        for server in (plain, tls):
            out = subprocess.run(["ss", "-Hltn", f"sport = :{server.port}"],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            send_q = int(out.split()[2])
            assert send_q == min(BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
            assert send_q >= 128
