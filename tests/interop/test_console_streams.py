"""A hundred open dashboards do not delay a boot: a real ``slate serve`` on loopback, the
console on its own HTTPS listener (as by default), 100 live-update streams (server-sent
events) opened at once against it.  16 get a stream (the cap), the other 84 are told 503
at once; with the 16 open, a boot script and the boot environment come from the PXE
listener and the console itself still answers.  The same 100 requests on the PXE listener
are 404 and hold nothing.  No timing is asserted: each request either completes or the
test fails on its (generous) socket timeout."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
DASHBOARDS = 100
CAP = 16  # webui.api.events.MAX_STREAMS, written out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(home: Path, slate: Any) -> Iterator[dict[str, Any]]:
    made = slate("user", "add", "vic", "--role", "viewer", "--password-stdin",
                 input=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = slate("user", "token", "vic").stdout.strip()
    (home / "bootimage").mkdir(parents=True, exist_ok=True)
    (home / "bootimage" / "vmlinuz").write_bytes(b"k" * 4096)
    ports = {"http": free_port(), "console": free_port()}
    args = ["serve", "--interface", "lo", "--address", "127.0.0.1", "--dhcp", "off",
            "--http-port", str(ports["http"]), "--tftp-port", str(free_port()), "--no-dns",
            "--console-listen", f"127.0.0.1:{ports['console']}",
            "--client-tls-port", str(free_port())]  # fmt: skip
    log = home / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--home", str(home), *args],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        for _ in range(300):
            assert proc.poll() is None, log.read_text()
            if "ready" in log.read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        ctx = ssl.create_default_context(cafile=str(home / "console-cert.pem"))
        yield {**ports, "token": token, "ctx": ctx, "proc": proc, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open_stream(port: int, token: str, ctx: ssl.SSLContext | None) -> socket.socket:
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=60)
    if ctx is not None:
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())  # fmt: skip
    return sock


def _status(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        got = sock.recv(1)
        assert got, f"connection closed before a status line: {head!r}"
        head += got
    return int(head.split()[1])


def _get(port: int, path: str, ctx: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_hundred_dashboards_do_not_delay_a_boot(served: dict[str, Any]) -> None:
    streams = [_open_stream(served["console"], served["token"], served["ctx"])
               for _ in range(DASHBOARDS)]  # fmt: skip
    try:
        statuses = [_status(s) for s in streams]
        assert statuses.count(200) == CAP and statuses.count(503) == DASHBOARDS - CAP
        # With every live-update place taken: the machines' listener answers ...
        status, script = _get(served["http"], "/boot/52-54-00-00-00-99.ipxe")
        assert status == 200 and script.startswith(b"#!ipxe")
        assert _get(served["http"], "/bootenv/vmlinuz") == (200, b"k" * 4096)
        # ... and the console itself still serves pages (its pool is larger than the cap).
        assert _get(served["console"], "/login", served["ctx"])[0] == 200
    finally:
        for s in streams:
            s.close()
    # On the PXE listener the same requests are 404 and hold no thread.
    pxe = [_open_stream(served["http"], served["token"], None) for _ in range(DASHBOARDS)]
    try:
        assert [_status(s) for s in pxe] == [404] * DASHBOARDS
        assert _get(served["http"], "/boot/52-54-00-00-00-99.ipxe")[0] == 200
    finally:
        for s in pxe:
            s.close()


def test_open_live_views_end_cleanly_when_the_appliance_stops(served: dict[str, Any]) -> None:
    """``systemctl stop`` with dashboards open: each stream is ended as an HTTP response
    (its last chunk), not cut off, and ``slate serve`` exits 0 having said "stopped"."""
    streams = [_open_stream(served["console"], served["token"], served["ctx"]) for _ in range(3)]
    try:
        assert [_status(s) for s in streams] == [200, 200, 200]
        served["proc"].terminate()
        for s in streams:
            s.settimeout(30)  # a stream that is not ended keeps its keep-alives for 300 s
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            assert got.endswith(b"\r\n0\r\n\r\n"), got[-200:]
    finally:
        for s in streams:
            s.close()
    assert served["proc"].wait(timeout=30) == 0
    assert "stopped" in served["log"].read_text()
