"""Notifications end to end: an outbox row written with the job's end, delivered to a
real HTTP receiver (signature checked with the secret) and a real SMTP server (aiosmtpd,
STARTTLS + AUTH LOGIN), with a retry after the receiver was down.

Every socket of a test (receivers and the deliverer) lives in a network namespace the
test creates: the test's thread moves into it (``setns``) and back at the end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from appliance import db
from appliance.config import Layout
from appliance.jobs import Jobs
from appliance.lab.forward import enter_netns
from appliance.lab.netns import Netns
from appliance.notify import outbox
from appliance.notify.deliver import Notifier, deliver_due
from appliance.notify.events import SIGNATURE_HEADER, Event, verify
from appliance.timestamps import utc_now
from tests.conftest import require_root
from tests.unit.http_kit import V1, write_image

SECRET = "hook-secret"


class Receiver:
    """A webhook receiver on 127.0.0.1:port that keeps what it got and whether the
    signature was right."""

    def __init__(self, port: int = 0) -> None:
        self.got: list[tuple[dict[str, Any], bool]] = []
        received = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(SECRET, body, self.headers.get(SIGNATURE_HEADER, ""))
                received.append((json.loads(body), ok))
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def netns() -> Iterator[Netns]:
    """This test's thread inside a fresh namespace (only ``lo``), back out afterwards."""
    require_root()
    ns = Netns(f"slnt{secrets.token_hex(3)}")
    home_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter_netns(ns.name)
        assert [name for _, name in socket.if_nameindex()] == ["lo"]  # not the host's
        yield ns
    finally:
        try:
            if _setns(home_ns) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the host namespace")
        finally:
            os.close(home_ns)
            ns.delete()


def _setns(fd: int) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.setns(fd, 0x40000000))  # CLONE_NEWNET


@pytest.fixture
def jobs(home: Path) -> Jobs:
    layout = Layout(home)
    write_image(layout, "win11", V1)
    js = Jobs(db.connect(layout.db), layout)
    js.inventory.add_host("aa:bb:cc:00:00:01", "pc1", actor="t", room="lab1")
    js.inventory.add_host("aa:bb:cc:00:00:02", "pc2", actor="t", room="lab1")
    return js


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(jobs: Jobs, job_id: int) -> None:
    jobs.transition(job_id, "running")


def test_failed_job_reaches_the_webhook_signed(jobs: Jobs, receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook"
    outbox.add_webhook(jobs.conn, url, SECRET, "failed,done", "t")
    job = jobs.restore("pc1", "win11", actor="t")
    _run(jobs, job.id)
    jobs.failed(job.id, "disk vanished")
    # Queued with the transition, not yet sent: nothing is delivered in the job's move.
    assert receiver.got == []
    assert deliver_due(jobs.conn) == ["sent"]
    ((body, ok),) = receiver.got
    assert ok
    assert body["event"] == "failed" and body["subject"] == "pc1"
    assert body["job"] == job.id and body["reason"] == "disk vanished"
    log = outbox.delivery_log(jobs.conn)
    assert [(r["event"], r["ok"], r["attempt"]) for r in log] == [("failed", True, 1)]
    assert deliver_due(jobs.conn) == []  # sent once


def test_wrong_secret_is_refused_by_the_receiver_and_retried(
    jobs: Jobs, receiver: Receiver
) -> None:
    outbox.add_webhook(jobs.conn, f"http://127.0.0.1:{receiver.port}/", "not-it", "done", "t")
    job = jobs.restore("pc1", "win11", actor="t")
    _run(jobs, job.id)
    jobs.done(job.id)
    assert deliver_due(jobs.conn) == ["pending"]
    assert receiver.got[0][1] is False
    assert "HTTP 401" in outbox.delivery_log(jobs.conn)[0]["detail"]


def test_retry_after_the_receiver_was_down(jobs: Jobs) -> None:
    port = _free_port()
    outbox.add_webhook(jobs.conn, f"http://127.0.0.1:{port}/", SECRET, "done", "t")
    job = jobs.restore("pc1", "win11", actor="t")
    _run(jobs, job.id)
    jobs.done(job.id)
    now = time.time()
    assert deliver_due(jobs.conn, now=now) == ["pending"]  # refused: nobody listens
    assert deliver_due(jobs.conn, now=now + 29) == []  # backoff: 30 s after attempt 1
    assert deliver_due(jobs.conn, now=now + 31) == ["pending"]  # still down
    up = Receiver(port)
    try:
        assert deliver_due(jobs.conn, now=now + 31 + 59) == []  # 60 s after attempt 2
        assert deliver_due(jobs.conn, now=now + 31 + 61) == ["sent"]
        ((body, ok),) = up.got
        assert ok and body["event"] == "done" and body["job"] == job.id
    finally:
        up.close()
    log = outbox.delivery_log(jobs.conn)
    assert [(r["attempt"], r["ok"]) for r in reversed(log)] == [(1, False), (2, False), (3, True)]
    assert "cannot reach" in log[-1]["detail"]


def test_room_done_when_the_last_job_of_the_room_ends(jobs: Jobs, receiver: Receiver) -> None:
    outbox.add_webhook(jobs.conn, f"http://127.0.0.1:{receiver.port}/", SECRET, "room-done", "t")
    one, two = jobs.restore_room("lab1", "win11", actor="t")
    _run(jobs, one.id)
    jobs.done(one.id)
    assert deliver_due(jobs.conn) == []  # pc2 still has its job
    jobs.cancel(two.id, actor="t")
    assert deliver_due(jobs.conn) == ["sent"]
    ((body, ok),) = receiver.got
    assert ok and body["event"] == "room-done" and body["room"] == "lab1"
    assert [(s["host"], s["state"]) for s in body["seats"]] == [("pc1", "done"),
                                                                 ("pc2", "cancelled")]  # fmt: skip
    assert body["totals"] == {"done": 1, "failed": 0, "cancelled": 1}


def test_record_event_queues_disk_refused_for_the_health_check(
    jobs: Jobs, receiver: Receiver
) -> None:
    outbox.add_webhook(jobs.conn, f"http://127.0.0.1:{receiver.port}/", SECRET, "disk-refused", "t")
    facts = {"disk": "ATA QEMU HARDDISK QM00001", "smart": "FAILED", "reallocated": 12}
    event = Event("disk-refused", "pc1", utc_now(), facts)
    assert outbox.record_event(jobs.conn, event) == 1  # outside a transaction: its own
    with db.transaction(jobs.conn):  # inside one: commits with the caller's
        assert outbox.record_event(jobs.conn, event) == 1
    assert deliver_due(jobs.conn) == ["sent", "sent"]
    bodies = [body for body, ok in receiver.got if ok]
    assert len(bodies) == 2
    assert bodies[0]["event"] == "disk-refused" and bodies[0]["smart"] == "FAILED"
    assert bodies[0]["reallocated"] == 12 and bodies[0]["subject"] == "pc1"


def test_only_the_events_a_target_asked_for(jobs: Jobs, receiver: Receiver) -> None:
    outbox.add_webhook(jobs.conn, f"http://127.0.0.1:{receiver.port}/", SECRET, "failed", "t")
    job = jobs.restore("pc1", "win11", actor="t")
    _run(jobs, job.id)
    jobs.done(job.id)
    assert deliver_due(jobs.conn) == []
    assert receiver.got == []


# -- e-mail ---------------------------------------------------------------------------------
@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, list[Any], ssl.SSLContext, list[str]]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    messages: list[Any] = []
    mechanisms: list[str] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append((session.authenticated, envelope))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any):
        mechanisms.append(mechanism)
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == b"slate" and auth_data.password == b"mail-pass"
        )
        # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting)
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=server_tls,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_exclude_mechanism=["PLAIN"],  # the issue asks for AUTH LOGIN: offer only it
    )
    controller.start()
    try:
        yield controller.port, messages, client_tls, mechanisms
    finally:
        controller.stop()


def test_mail_over_starttls_with_login(jobs: Jobs, smtp_server: Any) -> None:
    port, messages, client_tls, mechanisms = smtp_server
    outbox.add_email(
        jobs.conn, "tech@example.org", f"127.0.0.1:{port}", "failed", "t",
        user="slate", password="mail-pass", starttls=True,
    )  # fmt: skip
    job = jobs.restore("pc1", "win11", actor="t")
    _run(jobs, job.id)
    jobs.failed(job.id, "disk vanished")
    assert deliver_due(jobs.conn, client_tls) == ["sent"]
    ((authenticated, envelope),) = messages
    assert authenticated and mechanisms == ["LOGIN"]
    assert envelope.rcpt_tos == ["tech@example.org"]
    text = envelope.content.decode()
    assert "Subject: [Slate] job failed on pc1" in text
    assert "reason: disk vanished" in text


def test_mail_with_a_wrong_password_is_logged_and_retried(jobs: Jobs, smtp_server: Any) -> None:
    port, messages, client_tls, mechanisms = smtp_server
    outbox.add_email(
        jobs.conn, "tech@example.org", f"127.0.0.1:{port}", "", "t",
        user="slate", password="wrong", starttls=True,
    )  # fmt: skip
    with db.transaction(jobs.conn):
        outbox.enqueue(jobs.conn, Event("disk-refused", "pc1", "2026-12-01T10:00:00Z"))
    assert deliver_due(jobs.conn, client_tls) == ["pending"]
    assert messages == [] and mechanisms == ["LOGIN"]
    assert "535" in outbox.delivery_log(jobs.conn)[0]["detail"]


def test_targets_list_hides_secrets(jobs: Jobs) -> None:
    outbox.add_webhook(jobs.conn, "https://hooks.example/x", SECRET, "", "t")
    outbox.add_email(jobs.conn, "a@example.org", "mail:587", "done", "t", user="u",
                     password="pw-not-shown", starttls=True)  # fmt: skip
    shown = json.dumps([t.public() for t in outbox.targets(jobs.conn)])
    assert SECRET not in shown and "pw-not-shown" not in shown
    hook, mail = outbox.targets(jobs.conn)
    assert hook.events == ("failed", "done", "room-done", "disk-refused", "forged-traffic")
    assert mail.events == ("done",) and mail.starttls
    outbox.remove(jobs.conn, hook.id, "t")
    assert [t.id for t in outbox.targets(jobs.conn)] == [mail.id]


def test_the_notifier_service_delivers_in_its_own_thread(
    jobs: Jobs, home: Path, receiver: Receiver
) -> None:
    from appliance.db import ThreadConnections

    outbox.add_webhook(jobs.conn, f"http://127.0.0.1:{receiver.port}/", SECRET, "done", "t")
    notifier = Notifier(ThreadConnections(Layout(home).db), interval=0.05)
    notifier.start()
    try:
        job = jobs.restore("pc1", "win11", actor="t")
        _run(jobs, job.id)
        jobs.done(job.id, verified_bytes=123)
        deadline = time.monotonic() + 60
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        notifier.stop()
    ((body, ok),) = receiver.got
    assert ok and body["event"] == "done" and body["verified_bytes"] == 123
