"""Everything the console asks of the appliance, in one place.

Only the appliance's public API is used: the context ``app.extensions["slate"]``
(:class:`appliance.http.context.HttpContext`) with
``.inventory`` (appliance.machines.Inventory), ``.jobs`` (appliance.jobs.Jobs),
``.store`` (appliance.store.Store), ``.db()`` and ``appliance.audit``.  Views and the
JSON API both call these functions, so the page and the API can never disagree.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from appliance import audit
from appliance.errors import Conflict, UsageError
from appliance.http.context import HttpContext
from appliance.jobs import parse_when, queries, versions_in_use
from appliance.machines import facts as machine_facts
from appliance.machines import normalize_mac


def slate() -> HttpContext:
    context: HttpContext = current_app.extensions["slate"]
    return context


def job_dict(job: Any) -> dict[str, Any]:
    """A job as the console shows it: the appliance's fields plus a percentage."""
    d: dict[str, Any] = job.to_dict()
    total = d.get("bytes_total") or 0
    d["percent"] = round(100.0 * d["bytes_done"] / total, 1) if total else 0.0
    if d["state"] == "done":
        d["percent"] = 100.0
    d["active"] = job.active
    return d


def active_jobs() -> list[dict[str, Any]]:
    return [job_dict(j) for j in slate().jobs.list_jobs()]


def _recent_ids(limit: int, *, ended: bool, host: str | None = None) -> list[int]:
    """Newest job ids, read from the documented ``jobs`` table through the context's
    ``db()``: the jobs API lists every job, and a dashboard asks once a second."""
    mac = normalize_mac(host) if host else None
    return queries.recent_ids(slate().db(), limit, ended=ended, host=mac)


def ended_jobs(limit: int = 50) -> list[dict[str, Any]]:
    jobs = slate().jobs
    return [job_dict(jobs.get(i)) for i in _recent_ids(limit, ended=True)]


def all_jobs(limit: int = 200, host: str | None = None) -> list[dict[str, Any]]:
    jobs = slate().jobs
    if host:
        host = slate().inventory.get_host(host).mac
    return [job_dict(jobs.get(i)) for i in _recent_ids(limit, ended=False, host=host)]


def hosts(q: str = "", room: str | None = None) -> list[dict[str, Any]]:
    """Registered machines (search by name, MAC or room), each with its active job."""
    a = slate()
    needle = q.strip().lower()
    active = {j.host: j.id for j in a.jobs.list_jobs()}
    by_facts = machine_facts.matching_macs(a.db(), needle)  # serial, SMBIOS UUID, model…
    out = []
    for h in a.inventory.hosts(room):
        d = h.to_dict()
        fields = any(needle in (d[k] or "").lower() for k in ("name", "mac", "room"))
        if needle and not fields and h.mac not in by_facts:
            continue
        d["active_job"] = active.get(h.mac)
        out.append(d)
    return out


def seen() -> list[dict[str, Any]]:
    return [s.to_dict() for s in slate().inventory.seen()]


def rooms() -> list[dict[str, Any]]:
    return [r.to_dict() for r in slate().inventory.rooms()]


def targets(macs: list[str], room: str | None) -> list[dict[str, Any]]:
    """The machines a reimage would overwrite: a room's hosts, or the chosen MACs."""
    inv = slate().inventory
    chosen = inv.hosts(room) if room else [inv.get_host(normalize_mac(m)) for m in macs]
    if not chosen:
        raise UsageError(
            "no machines chosen", hint="tick machines, or choose a room that has machines"
        )
    active = {j.host: j for j in slate().jobs.list_jobs()}
    rows = []
    for h in chosen:
        d = h.to_dict()
        busy = active.get(h.mac)
        d["busy"] = f"job {busy.id} ({busy.action}, {busy.state})" if busy else ""
        rows.append(d)
    return rows


def start_restore(
    macs: list[str],
    room: str | None,
    image_spec: str,
    when: str,
    actor: str,
    options: dict[str, Any] | None = None,
) -> list[Any]:
    """Restore jobs for every target; refused as a whole if any target is busy."""
    rows = targets(macs, room)
    busy = [f"{r['name']}: {r['busy']}" for r in rows if r["busy"]]
    if busy:
        raise Conflict(
            "some machines already have an unfinished job: " + "; ".join(busy),
            hint="cancel those jobs first, or leave the machines out",
        )
    not_before = parse_when(when) if when.strip() else None
    jobs = slate().jobs
    if room:
        return list(
            jobs.restore_room(room, image_spec, actor=actor, not_before=not_before, options=options)
        )
    return [
        jobs.restore(r["mac"], image_spec, actor=actor, not_before=not_before, options=options)
        for r in rows
    ]


def in_use() -> frozenset[tuple[str, str]]:
    return versions_in_use(slate().db())


def audit_log(limit: int = 200) -> list[dict[str, Any]]:
    return [dict(r) for r in audit.recent(slate().db(), limit)]
