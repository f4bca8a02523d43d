"""Which versions of an image retention keeps: a pure function of (versions, policy,
protected versions, time zone).

Rules (grandfather-father-son, as restic and borg count them): ``last N`` keeps the N
newest versions; ``daily N`` keeps the newest version of each of the N most recent local
days that have a version; ``weekly N`` the same per ISO week, ``monthly N`` per calendar
month.  A version is kept when any rule keeps it, or when it is protected (promoted and
used by a room or rule, needed by a job that has not ended, marked "keep", the newest
promoted version).  With no rule at all, every version is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from appliance.refs import version_time


@dataclass(frozen=True)
class Rules:
    last: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None

    @property
    def empty(self) -> bool:
        return all(n is None for n in (self.last, self.daily, self.weekly, self.monthly))


@dataclass(frozen=True)
class Plan:
    keep: dict[str, list[str]] = field(default_factory=dict)  # version → why
    remove: list[str] = field(default_factory=list)  # oldest first


def _local(version: str, tz: tzinfo | None) -> datetime:
    return version_time(version).astimezone(tz) if tz else version_time(version).astimezone()


def plan(
    versions: Sequence[str],
    rules: Rules,
    protected: Mapping[str, str] | None = None,
    tz: tzinfo | None = None,
) -> Plan:
    """Split ``versions`` (ids) into kept (with reasons) and removed."""
    protected = protected or {}
    newest_first = sorted(versions, key=version_time, reverse=True)
    why: dict[str, list[str]] = {v: [] for v in newest_first}
    if rules.empty:
        for v in newest_first:
            why[v].append("no retention rule")
    if rules.last:
        for v in newest_first[: rules.last]:
            why[v].append(f"last {rules.last}")
    buckets: list[tuple[str, int | None, Callable[[datetime], Hashable]]] = [
        ("daily", rules.daily, lambda t: t.date()),
        ("weekly", rules.weekly, lambda t: t.isocalendar()[:2]),
        ("monthly", rules.monthly, lambda t: (t.year, t.month)),
    ]
    for label, count, key in buckets:
        if not count:
            continue
        seen: set[Hashable] = set()
        for v in newest_first:
            bucket = key(_local(v, tz))
            if bucket in seen:
                continue
            seen.add(bucket)
            why[v].append(f"{label} {count}")
            if len(seen) == count:
                break
    for v, reason in protected.items():
        if v in why:
            why[v].append(reason)
    keep = {v: r for v, r in why.items() if r}
    remove = sorted((v for v in why if not why[v]), key=version_time)
    return Plan(keep, remove)
