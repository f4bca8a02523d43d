"""A room as a whole: every seat's current (or last) job, phase, progress, rate and ETA,
the room's totals, and the roomcast sessions serving it (from the status files their
senders keep).  One function of the database and the data directory, for ``slate room
status`` and the console alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.jobs import Jobs
from appliance.jobs.states import RETRYABLE, STARTED
from appliance.roomcast import read_status

# Every seat has every key (None when it has no job, or no roomcast session).
SEAT_KEYS: tuple[str, ...] = (
    "job",
    "action",
    "image",
    "state",
    "phase",
    "percent",
    "rate",
    "eta",
    "reason",
)
SEAT_KEYS += ("roomcast",)


def room_status(jobs: Jobs, home: Path, room: str) -> dict[str, Any]:
    hosts = jobs.inventory.hosts(room)  # NotFound for an unknown room
    sessions = read_status(home)
    seat_of = {s["job"]: (sess, s) for sess in sessions for s in sess.get("seats", [])}
    seats: list[dict[str, Any]] = []
    totals = {"done": 0, "running": 0, "failed": 0, "waiting": 0, "idle": 0}
    for h in hosts:
        found = jobs.list_jobs(include_ended=True, host=h.mac)
        job = found[0] if found else None
        seat: dict[str, Any] = dict.fromkeys(SEAT_KEYS)
        seat.update(host=h.name, mac=h.mac)
        if job is not None:
            pct = 100.0 * job.bytes_done / job.bytes_total if job.bytes_total else None
            seat.update(
                job=job.id,
                action=job.action,
                image=f"{job.image}@{job.version}" if job.version else job.image,
                state=job.state,
                phase=job.phase,
                percent=None if pct is None else round(pct, 1),
                rate=job.rate,
                eta=job.eta,
                reason=job.reason,
            )
            sess, rc = seat_of.get(job.id, (None, None))
            if rc is not None and sess is not None:
                seat["roomcast"] = {
                    "session": f"{sess['session']:08x}",
                    "transport": rc["transport"],
                    "why": rc["why"],
                    "catch": rc["catch"],
                    "mcast_bytes": rc["mcast_bytes"],
                    "http_bytes": rc["http_bytes"],
                    "forged": int(rc.get("forged", 0)),
                    "forgers": list(rc.get("forgers", [])),
                }
        totals[_bucket(job.state if job else None)] += 1
        seats.append(seat)
    jobs_here = {s["job"] for s in seats if s["job"] is not None}
    mine = [
        {k: v for k, v in sess.items() if k != "seats"}
        for sess in sessions
        if any(s["job"] in jobs_here for s in sess.get("seats", []))
    ]
    return {"room": room, "seats": seats, "totals": totals, "sessions": mine}


def _bucket(state: str | None) -> str:
    if state == "done":
        return "done"
    if state in STARTED:
        return "running"
    if state in RETRYABLE:
        return "failed"
    if state == "pending":
        return "waiting"  # not yet booted
    return "idle"
