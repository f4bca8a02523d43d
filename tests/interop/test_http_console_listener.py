"""``slate serve --console-listen``: a real serve process on loopback with the console on
its own HTTPS listener (certificate made at first start, fingerprint logged) and the
HTTP listener of the imaging network answering machines only."""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, ctx: ssl.SSLContext | None = None) -> http.client.HTTPResponse:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_serve_with_a_console_listener(home: Path) -> None:
    http_port, console_port = free_port(), free_port()
    args = ["serve", "--interface", "lo", "--address", "127.0.0.1", "--dhcp", "off",
            "--http-port", str(http_port), "--tftp-port", str(free_port()),
            "--console-listen", f"127.0.0.1:{console_port}",
            "--client-tls-port", str(free_port())]  # fmt: skip
    log = home / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "--home", str(home), *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        cert = home / "console-cert.pem"
        for _ in range(300):
            assert proc.poll() is None, log.read_text()
            if "ready" in log.read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        found = re.search(
            r"console on https://127\.0\.0\.1:(\d+)/ .*SHA-256 ([0-9A-F:]{95})", log.read_text()
        )
        assert found, log.read_text()
        assert int(found.group(1)) == console_port
        ctx = ssl.create_default_context(cafile=str(cert))
        resp = _get(console_port, "/login", ctx)
        assert resp.status == 200 and resp.getheader("Strict-Transport-Security")
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        assert hashlib.sha256(der).hexdigest().upper() == found.group(2).replace(":", "")
        assert _get(http_port, "/login").status == 404
        assert _get(http_port, "/api/v1/openapi.json").status == 404
        assert _get(http_port, "/boot/52-54-00-00-00-01.ipxe").status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
