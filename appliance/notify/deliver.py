"""Delivering the outbox: webhooks (JSON POST, signed) and e-mail (SMTP, STARTTLS,
login), from the notifier's own thread.

A failed attempt is logged and retried on the schedule of
:func:`appliance.notify.events.backoff`; a receiver that is down for a while gets the
event when it comes back.  Nothing here runs in a job transition or an HTTP request.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import sqlite3
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage

from appliance.notify import outbox
from appliance.notify.events import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Event,
    mail_text,
    sign,
    subject_line,
)
from appliance.notify.outbox import Pending, Target

log = logging.getLogger("slate.notify")
TIMEOUT = 15.0


class DeliveryError(Exception):
    """One attempt did not get through (the detail goes to the delivery log)."""


def post_webhook(
    target: Target, event: str, body: bytes, context: ssl.SSLContext | None = None
) -> str:
    """POST ``body`` to the webhook; returns the status line, raises DeliveryError."""
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL, checked on add)
        target.address,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "slate-notify/1",
            SIGNATURE_HEADER: sign(target.secret, body),
            EVENT_HEADER: event,
        },
    )
    opener = urllib.request.urlopen
    try:
        with opener(request, timeout=TIMEOUT, context=context) as resp:
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:  # 4xx/5xx: retried too (a receiver may recover)
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"cannot reach {target.address}: {_reason(exc)}") from exc


def send_mail(target: Target, body: bytes, context: ssl.SSLContext | None = None) -> str:
    """Send the event (``body``: its JSON payload) as a plain-text mail."""
    event = _event(body)
    host, port = outbox.parse_smtp(target.smtp)
    msg = EmailMessage()
    msg["Subject"] = subject_line(event)
    msg["From"] = target.smtp_user if "@" in target.smtp_user else f"slate@{socket.gethostname()}"
    msg["To"] = target.address
    msg.set_content(mail_text(event))
    try:
        with smtplib.SMTP(host, port, timeout=TIMEOUT) as smtp:
            smtp.ehlo()
            if target.starttls:
                smtp.starttls(context=context or ssl.create_default_context())
                smtp.ehlo()
            if target.smtp_user:
                smtp.login(target.smtp_user, target.secret)
            refused = smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {target.smtp}: {_reason(exc)}") from exc
    if refused:
        raise DeliveryError(f"SMTP {target.smtp} refused {', '.join(refused)}")
    return f"accepted by {target.smtp}"


def _event(body: bytes) -> Event:
    data = json.loads(body)
    kind, subject, at = data.pop("event"), data.pop("subject"), data.pop("at")
    return Event(kind, subject, at, data)


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    return str(inner if isinstance(inner, BaseException | str) else exc) or type(exc).__name__


def deliver(item: Pending, context: ssl.SSLContext | None = None) -> str:
    if item.target.kind == "webhook":
        return post_webhook(item.target, item.event, item.body, context)
    return send_mail(item.target, item.body, context)


def deliver_due(
    conn: sqlite3.Connection, context: ssl.SSLContext | None = None, now: float | None = None
) -> list[str]:
    """One pass over the due outbox rows; returns their new states."""
    states = []
    for item in outbox.due(conn, now):
        try:
            ok, detail = True, deliver(item, context)
        except DeliveryError as exc:
            ok, detail = False, str(exc)
        except Exception as exc:  # a bug must not keep the row due forever
            log.exception("delivering notification %d failed", item.id)
            ok, detail = False, f"internal error: {exc}"
        state = outbox.record_attempt(conn, item, ok, detail, now)
        if not ok:
            log.warning("notification %d to %s: %s (%s)", item.id, item.target.address,
                        detail, state)  # fmt: skip
        states.append(state)
    return states


class Notifier:
    """The service ``slate serve`` starts: delivers the outbox every ``interval`` s."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        interval: float = 5.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect = connect  # a db.ThreadConnections: this thread's own connection
        self.interval = interval
        self.context = context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=TIMEOUT + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                deliver_due(self.connect(), self.context)
            except Exception:  # never let notifications take the appliance down
                log.exception("notification delivery failed; trying again")
