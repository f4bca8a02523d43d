"""Per image: whether captures are promoted at once (FOG's behaviour), and how many
versions retention keeps (table ``image_policy``, migration 0006)."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, replace
from typing import Any

from appliance.errors import UsageError

KEEP_FIELDS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


@dataclass(frozen=True)
class ImagePolicy:
    image: str
    auto_promote: bool = False
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    pruned_at: str | None = None  # the last automatic prune (UTC)
    publish: str = ""  # the district library its promoted versions go to ("" = none)

    @property
    def retains(self) -> bool:
        """True when retention is set: without it every version is kept."""
        return any(getattr(self, f) is not None for f in KEEP_FIELDS)

    def describe(self) -> str:
        parts = [f"{f[5:]} {getattr(self, f)}" for f in KEEP_FIELDS if getattr(self, f) is not None]
        return "keep " + ", ".join(parts) if parts else "keep every version"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def get(conn: sqlite3.Connection, image: str) -> ImagePolicy:
    row = conn.execute("SELECT * FROM image_policy WHERE image=?", (image,)).fetchone()
    if row is None:
        return ImagePolicy(image)
    keep = {f: row[f] for f in KEEP_FIELDS}
    return ImagePolicy(image, bool(row["auto_promote"]), **keep, pruned_at=row["pruned_at"],
                       publish=row["publish"])  # fmt: skip


def every(conn: sqlite3.Connection) -> list[ImagePolicy]:
    names = [r[0] for r in conn.execute("SELECT image FROM image_policy ORDER BY image")]
    return [get(conn, n) for n in names]


def put(conn: sqlite3.Connection, policy: ImagePolicy) -> ImagePolicy:
    for f in KEEP_FIELDS:
        value = getattr(policy, f)
        if value is not None and not 0 <= value <= 10_000:
            raise UsageError(f"--{f.replace('_', '-')} {value} is out of range", hint="0..10000")
    conn.execute(
        "INSERT INTO image_policy(image, auto_promote, keep_last, keep_daily, keep_weekly,"
        " keep_monthly, pruned_at, publish) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(image) DO"
        " UPDATE SET auto_promote=excluded.auto_promote, keep_last=excluded.keep_last,"
        " keep_daily=excluded.keep_daily, keep_weekly=excluded.keep_weekly,"
        " keep_monthly=excluded.keep_monthly, pruned_at=excluded.pruned_at,"
        " publish=excluded.publish",
        (policy.image, int(policy.auto_promote), *(getattr(policy, f) for f in KEEP_FIELDS),
         policy.pruned_at, policy.publish),
    )  # fmt: skip
    return policy


def mark_pruned(conn: sqlite3.Connection, image: str, at: str) -> None:
    put(conn, replace(get(conn, image), pruned_at=at))
