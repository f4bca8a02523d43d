"""The per-machine history: every job a machine ever had, with the image version, how
long it ran, the bytes it moved and how it ended; as rows or as CSV."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime
from typing import Any

from appliance.jobs import queries

FIELDS = (
    "job",
    "action",
    "image",
    "version",
    "state",
    "reason",
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "bytes",
    "created_by",
)


def _seconds(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return int((datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds())


def host_history(conn: sqlite3.Connection, mac: str) -> list[dict[str, Any]]:
    """``mac``'s jobs, oldest first.  ``version`` is what it restored, or for a capture
    the version it committed; ``bytes`` the verified bytes of a job that got that far,
    else what it had moved; ``duration_s`` from the client's first call to the end."""
    rows = queries.of_host(conn, mac.lower())
    out = []
    for r in rows:
        started = r["started_at"]
        out.append(
            {
                "job": r["id"],
                "action": r["action"],
                "image": r["image"] or "",
                "version": r["result_version"] or r["version"] or "",
                "state": r["state"],
                "reason": r["reason"] or "",
                "created_at": r["created_at"],
                "started_at": started or "",
                "finished_at": r["finished_at"] or "",
                "duration_s": _seconds(started, r["finished_at"]),
                "bytes": int(r["verified_bytes"] or r["bytes_done"] or 0),
                "created_by": r["created_by"],
            }
        )
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    """RFC 4180 CSV with a header line (what a spreadsheet opens)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row[k]) for k in FIELDS})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (a failure reason comes from the
    client, on the hostile PXE network) is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
