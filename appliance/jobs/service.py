"""The :class:`Jobs` service: create, find and move jobs — every write on ``jobs``.

A job = (host, action, image version, options) that moves through the state table of
:mod:`appliance.jobs.states`.  Each job carries a secret token that authorises exactly
that job's client calls (:mod:`appliance.jobs.tokens`: derived, never stored).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from appliance import audit
from appliance.config import Layout
from appliance.db import transaction
from appliance.errors import Conflict, NotFound, PeerError, UsageError
from appliance.formats.names import is_image_name
from appliance.jobs import tokens
from appliance.jobs.states import ACTIVE, FINAL, RETRYABLE, STARTED, check_transition, sql_in
from appliance.jobs.when import utc_now
from appliance.machines import Host, Inventory, parse_disk_hint
from appliance.store import Store

ACTIONS = ("restore", "capture", "register", "wipe")
AFTER = ("reboot", "poweroff", "none")
# How a restore gets its chunks: auto = roomcast (multicast) when two or more machines
# restore the same version, else HTTP; see docs/roomcast.md.
TRANSPORTS = ("auto", "multicast", "unicast")
DEFAULT_GIVE_UP_AFTER = 6 * 3600
# A machine that fetched its boot script but whose client never called in (a kernel
# that does not boot, a NIC without a driver) fails its job after this long.
BOOT_TIMEOUT = 30 * 60
# A client that stopped reporting is given its own give_up_after plus this margin
# (it retries for that long before it gives up itself).
STALE_MARGIN = 5 * 60


@dataclass(frozen=True)
class Job:
    id: int
    host: str
    host_name: str
    action: str
    image: str | None
    version: str | None
    options: dict[str, Any]
    state: str
    created_by: str
    created_at: str
    not_before: str | None
    updated_at: str
    finished_at: str | None
    reason: str
    phase: str
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None
    verified_bytes: int
    result_version: str | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _job(row: sqlite3.Row) -> Job:
    data = {k: row[k] for k in Job.__dataclass_fields__ if k not in ("options", "host_name")}
    return Job(**data, options=json.loads(row["options"] or "{}"), host_name=row["host_name"])


_SELECT = (
    "SELECT j.*, COALESCE(h.name, j.host) AS host_name"
    " FROM jobs j LEFT JOIN hosts h ON h.mac=j.host"
)
_ACTIVE_SQL = sql_in(ACTIVE)


def resolve_image(layout: Layout, name: str, version: str | None) -> tuple[str, str]:
    """``name`` + version (None = latest promoted) → (name, version) of a committed one."""
    return resolve_spec(layout, f"{name}@{version}" if version else name)


def resolve_spec(
    layout: Layout, spec: str, conn: sqlite3.Connection | None = None
) -> tuple[str, str]:
    """An image reference (NAME, NAME@VERSION, NAME@2026-11-20, NAME@-3d; see
    appliance.refs) → (name, version): what every restore, room and rule resolves.
    With ``conn`` (a restore being made), a version the store lacks may come from a
    district library while it is reachable (read-through, docs/district.md)."""
    try:
        manifest = Store(layout).resolve_ref(spec)
    except NotFound as missing:
        if conn is None:
            raise
        from appliance.district import readthrough

        manifest = readthrough.resolve(layout, conn, spec, missing)
    return manifest.image, manifest.version


class Jobs:
    """Create, find and move jobs; one instance per database connection."""

    def __init__(self, conn: sqlite3.Connection, layout: Layout) -> None:
        self.conn = conn
        self.layout = layout
        self.inventory = Inventory(conn)
        self._secret: bytes | None = None

    # -- tokens ------------------------------------------------------------------------
    def _derive(self, job_id: int, nonce: str) -> str:
        if self._secret is None:
            self._secret = tokens.load_secret(self.layout)
        return tokens.derive(self._secret, job_id, nonce)

    def token(self, job_id: int) -> str:
        """The job's secret token, for its boot script only."""
        row = self.conn.execute("SELECT token_nonce FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}", hint="see `slate job list --all`")
        return self._derive(job_id, row[0])

    def find_by_token(self, token: str) -> Job | None:
        """The job a client token belongs to, or None."""
        row = self.conn.execute(
            f"{_SELECT} WHERE j.token_hash=?", (tokens.token_hash(token),)
        ).fetchone()
        return _job(row) if row else None

    def by_token(self, token: str) -> Job:
        """The job a client token belongs to; PeerError if none."""
        job = self.find_by_token(token)
        if job is None:
            raise PeerError("unknown or wrong job token", hint="boot the machine again")
        return job

    # -- create ------------------------------------------------------------------------
    def create(
        self,
        action: str,
        host_ref: str,
        *,
        actor: str,
        image: str | None = None,
        version: str | None = None,
        not_before: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Job:
        with transaction(self.conn):
            job = self._insert(action, host_ref, image, version, not_before, options or {}, actor)
            audit.record(self.conn, actor, f"job.{action}", job.host_name, _describe(job))
        return job

    def _insert(
        self,
        action: str,
        host_ref: str,
        image: str | None,
        version: str | None,
        not_before: str | None,
        options: dict[str, Any],
        actor: str,
    ) -> Job:
        if action not in ACTIONS:
            raise UsageError(f"unknown job action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
        host = self.inventory.get_host(host_ref)
        busy = self.active_for(host.mac)
        if busy is not None:
            raise Conflict(
                f"host {host.name} already has an active {busy.action} job ({busy.id}, "
                f"{busy.state})",
                hint=f"wait for it, or cancel it with `slate job cancel {busy.id}`",
            )
        opts = self._options(host.disk_hint, self._room_after(action, host, options))
        nonce = tokens.new_nonce()
        cur = self.conn.execute(
            "INSERT INTO jobs(host, action, image, version, options, token_hash, token_nonce,"
            " created_by, not_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                host.mac,
                action,
                image,
                version,
                json.dumps(opts, sort_keys=True),
                f"unset:{nonce}",
                nonce,
                actor,
                not_before,
            ),
        )
        job_id = int(cur.lastrowid or 0)
        token = self._derive(job_id, nonce)
        self.conn.execute(
            "UPDATE jobs SET token_hash=? WHERE id=?", (tokens.token_hash(token), job_id)
        )
        return self.get(job_id)

    def _room_after(self, action: str, host: Host, given: dict[str, Any]) -> dict[str, Any]:
        """A restore that does not say what to do when done takes its room's standing
        setting (``slate room set-after``); ``after_room`` names where it came from."""
        if action != "restore" or given.get("after"):
            return given
        after = self.inventory.room_after_for(host)
        return {**given, "after": after, "after_room": host.room} if after else given

    @staticmethod
    def _options(disk_hint: str, given: dict[str, Any]) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "disk": parse_disk_hint(disk_hint),
            "grow": False,
            "after": "reboot",
            "give_up_after": DEFAULT_GIVE_UP_AFTER,
        }
        opts.update(given)
        if opts["after"] not in AFTER:
            raise UsageError(
                f"--after {opts['after']!r} is not known",
                hint="reboot (into the restored system) or poweroff (shut down)",
            )
        if opts.setdefault("transport", "auto") not in TRANSPORTS:
            raise UsageError(
                f"--transport {opts['transport']!r} is not known", hint=", ".join(TRANSPORTS)
            )
        return opts

    def restore(
        self,
        host_ref: str,
        image_spec: str,
        *,
        actor: str,
        not_before: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Job:
        """A restore job; ``image_spec`` NAME (latest now) or NAME@VERSION."""
        name, version = resolve_spec(self.layout, image_spec, self.conn)
        return self.create(
            "restore",
            host_ref,
            actor=actor,
            image=name,
            version=version,
            not_before=not_before,
            options=options,
        )

    def restore_room(
        self,
        room: str,
        image_spec: str,
        *,
        actor: str,
        not_before: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[Job]:
        """A restore job for every host of ``room``: all or none."""
        hosts = self.inventory.hosts(room)
        if not hosts:
            raise NotFound(f"room {room!r} has no hosts", hint="add some with `slate host add`")
        name, version = resolve_spec(self.layout, image_spec, self.conn)
        with transaction(self.conn):
            jobs = [
                self._insert("restore", h.mac, name, version, not_before, options or {}, actor)
                for h in hosts
            ]
            for job in jobs:
                audit.record(self.conn, actor, "job.restore", job.host_name, _describe(job))
        return jobs

    def capture(
        self,
        host_ref: str,
        image: str,
        *,
        actor: str,
        note: str = "",
        not_before: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Job:
        if not is_image_name(image):
            raise UsageError(
                f"{image!r} is not a valid image name",
                hint="use letters, digits, '.', '_' and '-' (up to 64)",
            )
        opts = {**(options or {}), "note": note, "after": "reboot"}
        return self.create(
            "capture", host_ref, actor=actor, image=image, not_before=not_before, options=opts
        )

    # -- read --------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        row = self.conn.execute(f"{_SELECT} WHERE j.id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}", hint="see `slate job list --all`")
        return _job(row)

    def list_jobs(self, *, include_ended: bool = False, host: str | None = None) -> list[Job]:
        where, args = [], []
        if not include_ended:
            where.append(f"j.state IN {_ACTIVE_SQL}")
        if host is not None:
            where.append("j.host=?")
            args.append(self.inventory.get_host(host).mac)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(f"{_SELECT}{clause} ORDER BY j.id DESC", args).fetchall()
        return [_job(r) for r in rows]

    def active_for(self, mac: str) -> Job | None:
        row = self.conn.execute(
            f"{_SELECT} WHERE j.host=? AND j.state IN {_ACTIVE_SQL} ORDER BY j.id DESC LIMIT 1",
            (mac,),
        ).fetchone()
        return _job(row) if row else None

    def due_for(self, mac: str, now: str | None = None) -> Job | None:
        """The active job ``mac`` should boot into now (its start time has come)."""
        job = self.active_for(mac)
        if job is None or (job.not_before and job.not_before > (now or utc_now())):
            return None
        return job

    def log_lines(self, job_id: int, limit: int = 1000) -> list[dict[str, str]]:
        rows = self.conn.execute(
            "SELECT at, line FROM (SELECT * FROM job_log WHERE job=? ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",
            (job_id, limit),
        ).fetchall()
        return [{"at": r["at"], "line": r["line"]} for r in rows]

    def log_length(self, job_id: int) -> int:
        """How many lines the log of job ``job_id`` holds (the client API caps it)."""
        (kept,) = self.conn.execute(
            "SELECT COUNT(*) FROM job_log WHERE job=?", (job_id,)
        ).fetchone()
        return int(kept)

    # -- move --------------------------------------------------------------------------
    def transition(self, job_id: int, new: str, *, reason: str = "") -> Job:
        with transaction(self.conn):
            self._move(job_id, new, reason)
        return self.get(job_id)

    def _move(self, job_id: int, new: str, reason: str = "") -> Job:
        job = self.get(job_id)
        check_transition(job_id, job.state, new)
        self.conn.execute(
            "UPDATE jobs SET state=?, updated_at=?, reason=CASE WHEN ?='' THEN reason ELSE ? END,"
            " finished_at=CASE WHEN ? THEN ? ELSE finished_at END WHERE id=?",
            (new, utc_now(), reason, reason, new in FINAL, utc_now(), job_id),
        )
        if new == "running":  # the history's duration runs from here (machines/history.py)
            self.conn.execute(
                "UPDATE jobs SET started_at=COALESCE(started_at, ?) WHERE id=?", (utc_now(), job_id)
            )
        if new in FINAL:  # callers hold a transaction: the job's end and its events commit as one
            from appliance.machines import timeline
            from appliance.notify.outbox import record_job_end

            ended = self.get(job_id)
            record_job_end(self.conn, ended)
            why = f": {ended.reason}" if ended.reason and new != "done" else ""
            timeline.record(self.conn, job.host, new, f"job {job_id} {new}{why}", job=job_id,
                            reason=ended.reason)  # fmt: skip
        return job

    def progress(
        self,
        job_id: int,
        *,
        phase: str,
        done: int,
        total: int,
        rate: float = 0.0,
        eta: float | None = None,
    ) -> None:
        self._require_active(job_id)
        before = self.conn.execute("SELECT host, phase FROM jobs WHERE id=?", (job_id,)).fetchone()
        self.conn.execute(
            "UPDATE jobs SET phase=?, bytes_done=?, bytes_total=?, rate=?, eta=?, updated_at=?"
            " WHERE id=?",
            (phase, int(done), int(total), float(rate), eta, utc_now(), job_id),
        )
        if before is not None and phase and phase != before["phase"]:
            from appliance.machines import timeline

            timeline.record(self.conn, before["host"], "phase", f"job {job_id}: {phase}",
                            job=job_id, phase=phase)  # fmt: skip

    def log(self, job_id: int, lines: list[str]) -> None:
        self.conn.executemany(
            "INSERT INTO job_log(job, line) VALUES (?, ?)", [(job_id, str(x)) for x in lines]
        )

    def done(self, job_id: int, *, verified_bytes: int = 0) -> Job:
        with transaction(self.conn):
            self.conn.execute(  # before the move, so the "done" event carries it
                "UPDATE jobs SET verified_bytes=? WHERE id=?", (int(verified_bytes), job_id)
            )
            self._move(job_id, "done")
        return self.get(job_id)

    def failed(self, job_id: int, reason: str) -> Job:
        return self.transition(job_id, "failed", reason=reason or "failed without a reason")

    def set_result_version(self, job_id: int, version: str) -> None:
        self.conn.execute("UPDATE jobs SET result_version=? WHERE id=?", (version, job_id))

    def mark_booted_after(self, job_id: int) -> None:
        """Note in the options of a done restore that its machine has since booted its
        local disk (``booted_after``: the boot planner's "fresh restore" is over)."""
        row = self.conn.execute("SELECT options FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return
        opts = json.loads(row[0])
        opts["booted_after"] = True
        self.conn.execute(
            "UPDATE jobs SET options=? WHERE id=?", (json.dumps(opts, sort_keys=True), job_id)
        )

    def cancel(self, job_id: int, *, actor: str, reason: str = "") -> Job:
        with transaction(self.conn):
            job = self._move(job_id, "cancelled", reason or f"cancelled by {actor}")
            audit.record(self.conn, actor, "job.cancel", job.host_name, f"job {job_id}")
        return self.get(job_id)

    def retry(self, job_id: int, *, actor: str) -> Job:
        """A new job doing what a failed or cancelled one should have done."""
        old = self.get(job_id)
        if old.state not in RETRYABLE:
            raise Conflict(
                f"job {job_id} is {old.state}; only a failed or cancelled job can be retried",
                hint="see `slate job show " + str(job_id) + "`",
            )
        with transaction(self.conn):
            job = self._insert(
                old.action, old.host, old.image, old.version, None, old.options, actor
            )
            audit.record(self.conn, actor, "job.retry", job.host_name, f"job {job_id} → {job.id}")
        return job

    def delete(self, job_id: int, *, actor: str) -> None:
        job = self.get(job_id)
        if job.active:
            raise Conflict(f"job {job_id} is {job.state}", hint="cancel it first")
        with transaction(self.conn):
            self.conn.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            audit.record(self.conn, actor, "job.delete", job.host_name, f"job {job_id}")

    def expire_stale(self, now: datetime | None = None) -> list[Job]:
        """Fail the jobs whose machine has gone silent, so nothing stays "running"
        forever: ``booting`` with no client call for :data:`BOOT_TIMEOUT`; ``running``
        or ``verifying`` with no news for the job's ``give_up_after`` (the client's own
        limit) plus :data:`STALE_MARGIN`.  Returns the jobs failed."""
        now = now or datetime.now(UTC)
        failed = []
        rows = self.conn.execute(f"{_SELECT} WHERE j.state IN {sql_in(STARTED)}").fetchall()
        for job in map(_job, rows):
            since = datetime.strptime(job.updated_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            silent = (now - since).total_seconds()
            if job.state == "booting":
                limit = BOOT_TIMEOUT
                why = (
                    f"the machine fetched its boot script at {job.updated_at} but its client"
                    f" never called in within {limit // 60} min; look at the machine's screen"
                    " (kernel, disk or network driver) and retry the job"
                )
            else:
                limit = int(job.options.get("give_up_after") or DEFAULT_GIVE_UP_AFTER)
                limit += STALE_MARGIN
                why = (
                    f"no news from the machine since {job.updated_at} ({job.phase or job.state},"
                    f" {_percent(job)}); it lost power or its network for more than"
                    f" {limit // 60} min. The disk may be half written: retry the job"
                )
            if silent <= limit:
                continue
            with transaction(self.conn):
                current = self.get(job.id)
                if current.state != job.state or current.updated_at != job.updated_at:
                    continue  # it reported in the meantime
                self._move(job.id, "failed", why)
                audit.record(self.conn, "slate", "job.expire", job.host_name, f"job {job.id}")
            failed.append(self.get(job.id))
        return failed

    def _require_active(self, job_id: int) -> Job:
        job = self.get(job_id)
        if not job.active:
            raise Conflict(f"job {job_id} has ended ({job.state})", hint="boot the machine again")
        return job


def _percent(job: Job) -> str:
    if not job.bytes_total:
        return "no progress reported"
    return f"{100 * job.bytes_done / job.bytes_total:.0f} % done"


def _describe(job: Job) -> str:
    what = f"job {job.id}"
    if job.image:
        what += f" {job.image}" + (f"@{job.version}" if job.version else "")
    if job.not_before:
        what += f" at {job.not_before}"
    return what
