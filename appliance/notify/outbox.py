"""Where notifications go (targets), what waits to go (the outbox), what went (the log).

:func:`record_job_end` runs inside the transaction that ends a job, so an event is
queued exactly when the job really ended; delivery happens later, in the notifier's
own thread (:mod:`appliance.notify.deliver`), never in a job transition or an HTTP
request.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from appliance import audit
from appliance.db import transaction
from appliance.errors import NotFound, UsageError
from appliance.jobs import queries
from appliance.jobs.states import FINAL, NOTIFIED, ordered
from appliance.machines.queries import room_of
from appliance.notify.events import Event, backoff, parse_events, payload
from appliance.timestamps import utc_now


@dataclass(frozen=True)
class Target:
    id: int
    kind: str  # webhook | email
    address: str  # URL or recipient
    secret: str  # HMAC secret (webhook) or SMTP password (email); never printed
    smtp: str
    smtp_user: str
    starttls: bool
    events: tuple[str, ...]
    created_by: str
    created_at: str

    def public(self) -> dict[str, Any]:
        """What `slate notify list` and the console show: no secret, no password."""
        out = {
            "id": self.id,
            "kind": self.kind,
            "address": self.address,
            "events": list(self.events),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
        if self.kind == "email":
            out.update(smtp=self.smtp, user=self.smtp_user, starttls=self.starttls)
        return out


def _target(row: sqlite3.Row) -> Target:
    return Target(
        id=row["id"],
        kind=row["kind"],
        address=row["address"],
        secret=row["secret"],
        smtp=row["smtp"],
        smtp_user=row["smtp_user"],
        starttls=bool(row["starttls"]),
        events=tuple(e for e in row["events"].split(",") if e),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


# -- targets ------------------------------------------------------------------------------
def add_webhook(conn: sqlite3.Connection, url: str, secret: str, events: str, actor: str) -> Target:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{url!r} is not an http(s) URL", hint="e.g. https://chat.example/hook")
    if not secret:
        raise UsageError("a webhook needs a secret", hint="--secret S (the receiver checks it)")
    return _add(conn, "webhook", url, secret, "", "", False, events, actor)


def add_email(
    conn: sqlite3.Connection,
    to: str,
    smtp: str,
    events: str,
    actor: str,
    *,
    user: str = "",
    password: str = "",
    starttls: bool = False,
) -> Target:
    if "@" not in to:
        raise UsageError(f"{to!r} is not an e-mail address", hint="--to someone@example.org")
    parse_smtp(smtp)
    if user and not password:
        raise UsageError("--user without a password", hint="give it with --password-stdin")
    return _add(conn, "email", to, password, smtp, user, starttls, events, actor)


def parse_smtp(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{text!r} is not HOST:PORT", hint="e.g. --smtp mail.example.org:587")
    return host.strip("[]"), int(port)


def _add(
    conn: sqlite3.Connection,
    kind: str,
    address: str,
    secret: str,
    smtp: str,
    user: str,
    starttls: bool,
    events: str,
    actor: str,
) -> Target:
    kinds = ",".join(parse_events(events))
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO notify_targets(kind, address, secret, smtp, smtp_user, starttls,"
            " events, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, address, secret, smtp, user, int(starttls), kinds, actor),
        )
        audit.record(conn, actor, f"notify.add-{kind}", address, kinds)
    return get(conn, int(cur.lastrowid or 0))


def get(conn: sqlite3.Connection, target_id: int) -> Target:
    row = conn.execute("SELECT * FROM notify_targets WHERE id=?", (target_id,)).fetchone()
    if row is None:
        raise NotFound(f"no notification target {target_id}", hint="see `slate notify list`")
    return _target(row)


def targets(conn: sqlite3.Connection) -> list[Target]:
    return [_target(r) for r in conn.execute("SELECT * FROM notify_targets ORDER BY id")]


def remove(conn: sqlite3.Connection, target_id: int, actor: str) -> None:
    target = get(conn, target_id)
    with transaction(conn):
        conn.execute("DELETE FROM notify_targets WHERE id=?", (target_id,))
        audit.record(conn, actor, "notify.rm", target.address, f"target {target_id}")


# -- the outbox ---------------------------------------------------------------------------
def enqueue(
    conn: sqlite3.Connection, event: Event, *, only: int | None = None, now: float | None = None
) -> int:
    """Queue ``event`` for every target that wants it (or just target ``only``, for
    `slate notify test`).  Call inside the caller's transaction.  Returns rows queued."""
    body = payload(event)
    queued = 0
    for target in targets(conn):
        if only is not None and target.id != only:
            continue
        if only is None and event.kind not in target.events:
            continue
        conn.execute(
            "INSERT INTO notify_outbox(target, event, subject, body, next_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (target.id, event.kind, event.subject, body, time.time() if now is None else now),
        )
        queued += 1
    return queued


def record_event(conn: sqlite3.Connection, event: Event) -> int:
    """Queue ``event`` for every target that wants its kind; returns the rows queued.

    The one call for any part of Slate that has something to report (the disk health
    check calls it with ``Event("disk-refused", host_name, utc_now(), facts)``).  Inside
    the caller's transaction the rows commit with it; outside one it opens its own.
    Delivery happens later, in the notifier's thread: this never blocks on a receiver.
    """
    if conn.in_transaction:
        return enqueue(conn, event)
    with transaction(conn):
        return enqueue(conn, event)


def job_event(kind: str, job: Any) -> Event:
    """The event of a job that ended (``job`` is an :class:`appliance.jobs.Job`)."""
    details: dict[str, Any] = {
        "job": job.id,
        "host": job.host_name,
        "mac": job.host,
        "action": job.action,
        "image": job.image,
        "version": job.version,
        "state": job.state,
        "reason": job.reason,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "verified_bytes": job.verified_bytes,
    }
    return Event(kind, job.host_name, job.finished_at or utc_now(), details)


def record_job_end(conn: sqlite3.Connection, job: Any) -> int:
    """Queue what ``job`` (just moved to a final state, same transaction) causes:
    ``done`` or ``failed``, then ``room-done`` when it was the last active job of its
    host's room."""
    queued = 0
    if job.state in NOTIFIED:
        queued += enqueue(conn, job_event(job.state, job))
    room = room_of(conn, job.host)
    if room is None:
        return queued
    if queries.unfinished_in_room(conn, room) == 0:
        queued += enqueue(conn, room_event(conn, room))
    return queued


def room_event(conn: sqlite3.Connection, room: str) -> Event:
    """``room-done``: each seat's last job and how it ended."""
    rows = queries.last_of_room(conn, room)
    seats = [{"host": r[0], "job": r[1], "state": r[2], "reason": r[3]} for r in rows]
    totals = {s: sum(1 for x in seats if x["state"] == s) for s in ordered(FINAL)}
    return Event("room-done", room, utc_now(), {"room": room, "seats": seats, "totals": totals})


def disk_refused(conn: sqlite3.Connection, job: Any, facts: dict[str, Any]) -> int:
    """Queue ``disk-refused`` for ``job``: the client refused a disk for its health
    (``facts``: what it read, e.g. SMART overall result, reallocated sectors)."""
    base = job_event("disk-refused", job)
    event = Event("disk-refused", base.subject, utc_now(), {**base.details, **facts})
    return record_event(conn, event)


@dataclass(frozen=True)
class Pending:
    id: int
    target: Target
    event: str
    subject: str
    body: bytes
    attempts: int


def due(conn: sqlite3.Connection, now: float | None = None, limit: int = 50) -> list[Pending]:
    rows = conn.execute(
        "SELECT o.*, t.id AS tid FROM notify_outbox o JOIN notify_targets t ON t.id=o.target"
        " WHERE o.state='pending' AND o.next_at<=? ORDER BY o.next_at, o.id LIMIT ?",
        (time.time() if now is None else now, limit),
    ).fetchall()
    return [
        Pending(
            r["id"], get(conn, r["tid"]), r["event"], r["subject"], bytes(r["body"]), r["attempts"]
        )
        for r in rows
    ]


def record_attempt(
    conn: sqlite3.Connection, item: Pending, ok: bool, detail: str, now: float | None = None
) -> str:
    """Log one delivery attempt and schedule the next (or give up).  Returns the new
    state: ``sent``, ``pending`` or ``gave-up``."""
    attempt = item.attempts + 1
    wait = None if ok else backoff(attempt)
    state = "sent" if ok else ("gave-up" if wait is None else "pending")
    with transaction(conn):
        conn.execute(
            "UPDATE notify_outbox SET attempts=?, state=?, next_at=? WHERE id=?",
            (attempt, state, (time.time() if now is None else now) + (wait or 0), item.id),
        )
        conn.execute(
            "INSERT INTO notify_log(outbox, target, event, attempt, ok, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item.id, item.target.id, item.event, attempt, int(ok), detail[:500]),
        )
    return state


def count_by_state(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(state, how many) of the outbox's notifications, for the states that have any."""
    rows = conn.execute("SELECT state, COUNT(*) FROM notify_outbox GROUP BY state")
    return [(str(r[0]), int(r[1])) for r in rows.fetchall()]


def delivery_log(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT l.*, COALESCE(t.address, '(removed)') AS address, o.subject FROM notify_log l"
        " LEFT JOIN notify_targets t ON t.id=l.target LEFT JOIN notify_outbox o ON o.id=l.outbox"
        " ORDER BY l.id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        {
            "at": r["at"],
            "target": r["target"],
            "address": r["address"],
            "event": r["event"],
            "subject": r["subject"] or "",
            "attempt": r["attempt"],
            "ok": bool(r["ok"]),
            "detail": r["detail"],
        }
        for r in rows
    ]
