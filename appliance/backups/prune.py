"""``slate image prune`` and the automatic prune after a capture: apply the image's
retention rules (appliance.backups.retention) to the store, then collect garbage."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from appliance import audit
from appliance.backups import retention
from appliance.backups.schedules import restore_rules
from appliance.errors import Conflict, SlateError
from appliance.jobs import queries, versions_in_use
from appliance.machines.queries import host_rules, room_rules
from appliance.store import Store
from appliance.store import policy as policies
from appliance.store.collect import GcResult, collect
from appliance.timestamps import utc_now


@dataclass
class PruneResult:
    image: str
    rules: str
    keep: dict[str, list[str]] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dry_run: bool = True
    gc: GcResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "rules": self.rules,
            "keep": self.keep,
            "remove": self.remove,
            "removed": self.removed,
            "dry_run": self.dry_run,
            "gc": vars(self.gc) if self.gc else None,
        }


def images_uploading(conn: sqlite3.Connection) -> frozenset[str]:
    """Images a capture is uploading to now.  Only these block a prune: such a capture
    has asked which chunks its image already had and will name them in its commit.  A
    capture still pending (its machine not booted yet) asks after the prune, and uploads
    what the prune took away."""
    return queries.images_uploading(conn)


def rule_specs(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(who, image reference) of every standing rule: hosts', rooms', scheduled restores."""
    out = [(f"host {name}", spec) for name, spec in host_rules(conn)]
    out += [(f"room {name}", spec) for name, spec in room_rules(conn)]
    out += [(f"schedule {sid}", spec) for sid, spec in restore_rules(conn)]
    return out


def protected(store: Store, image: str, now: datetime | None = None) -> dict[str, str]:
    """{version: why it must stay} for the versions of ``image``."""
    conn = store.db()
    found: dict[str, str] = {}
    for v, marks in store.marks(image).items():
        if "keep" in marks:
            found[v] = "marked keep"
    for name, v in versions_in_use(conn):
        if name == image:
            found.setdefault(v, "needed by a job that has not ended")
    promoted = store.promoted_ids(image)
    if promoted:
        found.setdefault(promoted[-1], "newest promoted version")
    for who, spec in rule_specs(conn):
        if spec.partition("@")[0] != image:
            continue
        try:
            m = store.resolve_ref(spec, now=now)
        except SlateError:
            continue  # a rule naming nothing protects nothing
        found.setdefault(m.version, f"used by {who} ({spec})")
    return found


def plan(store: Store, image: str, *, now: datetime | None = None,
         tz: tzinfo | None = None) -> PruneResult:  # fmt: skip
    pol = policies.get(store.db(), image)
    rules = retention.Rules(pol.keep_last, pol.keep_daily, pol.keep_weekly, pol.keep_monthly)
    decided = retention.plan(store.version_ids(image), rules, protected(store, image, now), tz)
    return PruneResult(image, pol.describe(), decided.keep, decided.remove)


def prune(
    store: Store,
    image: str,
    *,
    actor: str,
    dry_run: bool = False,
    now: datetime | None = None,
    tz: tzinfo | None = None,
) -> PruneResult:
    """Remove what retention does not keep, then gc.  Refused while a capture of the
    image is in progress: its commit may name chunks of the versions it started from."""
    conn = store.db()
    store.resolve(image)  # NotFound for an image that does not exist
    result = plan(store, image, now=now, tz=tz)
    result.dry_run = dry_run
    if dry_run:
        return result
    if not result.remove:
        policies.mark_pruned(conn, image, utc_now())
        return result
    if image in images_uploading(conn):
        raise Conflict(
            f"a capture of {image} is in progress; nothing pruned",
            hint="prune after the capture job has ended (it prunes by itself then)",
        )
    for version in result.remove:
        if (image, version) in versions_in_use(conn):  # a job created since the plan
            result.keep[version] = ["needed by a job that has not ended"]
            continue
        store.remove(image, version)
        result.removed.append(version)
        audit.record(conn, actor, "image.prune", f"{image}@{version}", result.rules)
    result.remove = [v for v in result.remove if v not in result.keep]
    result.gc = collect(store)
    policies.mark_pruned(conn, image, utc_now())
    return result


def after_captures(store: Store, *, actor: str = "retention") -> list[PruneResult]:
    """Prune every image with retention rules that a capture job finished since its last
    prune (the Housekeeping loop calls this)."""
    conn = store.db()
    busy = images_uploading(conn)
    results = []
    for pol in policies.every(conn):
        if not pol.retains or pol.image in busy:
            continue
        finished = queries.last_capture_finished(conn, pol.image)
        # ">=": a capture that finished in the second of the last prune may be newer than
        # it (at worst one prune too many, never one too few).
        if finished is None or (pol.pruned_at is not None and finished < pol.pruned_at):
            continue
        try:
            results.append(prune(store, pol.image, actor=actor))
        except Conflict:
            continue
    return results
