"""After the restore: post-restore hook scripts and kept-partition rules (migration 0013).

A hook is a script kept per image, room or host; the restore client runs a job's hooks
in the boot environment after the write, ordered image → room → host (then in the order
they were added), with the restored filesystems mounted (docs/hooks.md).  A kept
partition ("keep partition N", per image or room) is left as it is on the disk when the
disk's partition N has the image's start, size and type; otherwise the restore fails
before writing anything.  What a job gets is :func:`for_job` — the only view the client
API serves, so a job token reaches that job's hooks and nothing else.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance import audit
from appliance.errors import Conflict, NotFound, UsageError
from appliance.machines import Inventory, normalize_mac
from appliance.store.library import check_name

SCOPES = ("image", "room", "host")
KEEP_SCOPES = ("image", "room")
MAX_SCRIPT = 256 * 1024
DEFAULT_TIMEOUT = 300
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Hook:
    id: int
    scope: str
    target: str
    name: str
    timeout: int
    size: int
    created_by: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class KeepRule:
    id: int
    scope: str
    target: str
    partition: int
    created_by: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _target(conn: sqlite3.Connection, scope: str, target: str) -> str:
    """The stored form of a scope's target: an image name, an existing room, a host's MAC."""
    if scope == "image":
        return check_name(target)
    if scope == "room":
        Inventory(conn).get_room(target)  # NotFound with its hint
        return target
    if scope == "host":
        return Inventory(conn).get_host(target).mac
    raise UsageError(f"unknown scope {scope!r}", hint="use --image, --room or --host")


def check_hook_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"{name!r} is not a usable hook name",
            hint="name the script file with letters, digits, '.', '_' and '-' (at most 64)",
        )
    return name


def add_hook(
    conn: sqlite3.Connection,
    scope: str,
    target: str,
    name: str,
    script: bytes,
    *,
    timeout: int = DEFAULT_TIMEOUT,
    actor: str,
) -> Hook:
    stored = _target(conn, scope, target)
    check_hook_name(name)
    if not script.strip():
        raise UsageError(f"the hook script {name} is empty", hint="give a script file")
    if len(script) > MAX_SCRIPT:
        raise UsageError(
            f"the hook script {name} is {len(script)} bytes (at most {MAX_SCRIPT})",
            hint="keep hooks small; put large files on the image itself",
        )
    if not script.startswith(b"#!"):
        raise UsageError(
            f"the hook script {name} does not start with '#!'",
            hint="begin it with an interpreter line, e.g. #!/bin/sh",
        )
    if not 1 <= timeout <= 86400:
        raise UsageError(f"timeout {timeout} s is out of range", hint="1..86400 seconds")
    try:
        cur = conn.execute(
            "INSERT INTO hooks(scope, target, name, script, timeout, created_by)"
            " VALUES (?,?,?,?,?,?)",
            (scope, stored, name, script, timeout, actor),
        )
    except sqlite3.IntegrityError:
        raise Conflict(
            f"the {scope} {target} already has a hook named {name}",
            hint="`slate hook rm` it first, or give the file another name",
        ) from None
    audit.record(conn, actor, "hook.add", f"{scope}:{stored}", f"{name} ({len(script)} bytes)")
    return get_hook(conn, int(cur.lastrowid or 0))


_HOOK_COLUMNS = "id, scope, target, name, timeout, length(script) AS size, created_by, created_at"


def _hook(row: sqlite3.Row) -> Hook:
    return Hook(**{k: row[k] for k in Hook.__dataclass_fields__})


def get_hook(conn: sqlite3.Connection, hook_id: int) -> Hook:
    query = f"SELECT {_HOOK_COLUMNS} FROM hooks WHERE id=?"  # noqa: S608 (a constant)
    row = conn.execute(query, (hook_id,)).fetchone()
    if row is None:
        raise NotFound(f"no hook {hook_id}", hint="`slate hook list` shows the hooks")
    return _hook(row)


def hooks(conn: sqlite3.Connection) -> list[Hook]:
    query = f"SELECT {_HOOK_COLUMNS} FROM hooks ORDER BY scope, target, id"  # noqa: S608
    rows = conn.execute(query)
    return [_hook(r) for r in rows]


def script(conn: sqlite3.Connection, hook_id: int) -> bytes:
    get_hook(conn, hook_id)
    return bytes(conn.execute("SELECT script FROM hooks WHERE id=?", (hook_id,)).fetchone()[0])


def remove_hook(conn: sqlite3.Connection, hook_id: int, *, actor: str) -> Hook:
    hook = get_hook(conn, hook_id)
    conn.execute("DELETE FROM hooks WHERE id=?", (hook_id,))
    audit.record(conn, actor, "hook.rm", f"{hook.scope}:{hook.target}", hook.name)
    return hook


def add_keep(
    conn: sqlite3.Connection, scope: str, target: str, partition: int, *, actor: str
) -> KeepRule:
    if scope not in KEEP_SCOPES:
        raise UsageError(f"a kept partition is a rule per image or room, not per {scope}",
                         hint="use --image NAME or --room ROOM")  # fmt: skip
    stored = _target(conn, scope, target)
    if not 1 <= partition <= 128:
        raise UsageError(f"partition {partition} is out of range", hint="1..128")
    try:
        cur = conn.execute(
            "INSERT INTO keep_rules(scope, target, partition, created_by) VALUES (?,?,?,?)",
            (scope, stored, partition, actor),
        )
    except sqlite3.IntegrityError:
        raise Conflict(f"the {scope} {target} already keeps partition {partition}") from None
    audit.record(conn, actor, "keep.add", f"{scope}:{stored}", f"partition {partition}")
    return get_keep(conn, int(cur.lastrowid or 0))


def get_keep(conn: sqlite3.Connection, rule_id: int) -> KeepRule:
    row = conn.execute("SELECT * FROM keep_rules WHERE id=?", (rule_id,)).fetchone()
    if row is None:
        raise NotFound(f"no kept-partition rule {rule_id}", hint="`slate keep list` shows them")
    return KeepRule(**{k: row[k] for k in KeepRule.__dataclass_fields__})


def keep_rules(conn: sqlite3.Connection) -> list[KeepRule]:
    ids = [r[0] for r in conn.execute("SELECT id FROM keep_rules ORDER BY scope, target, id")]
    return [get_keep(conn, i) for i in ids]


def remove_keep(conn: sqlite3.Connection, rule_id: int, *, actor: str) -> KeepRule:
    rule = get_keep(conn, rule_id)
    conn.execute("DELETE FROM keep_rules WHERE id=?", (rule_id,))
    audit.record(
        conn, actor, "keep.rm", f"{rule.scope}:{rule.target}", f"partition {rule.partition}"
    )
    return rule


def for_job(conn: sqlite3.Connection, image: str | None, mac: str) -> dict[str, Any]:
    """What the restore client of a job for ``mac`` restoring ``image`` runs and keeps:
    ``{"room": ..., "hooks": [{name, scope, target, timeout, script_b64}], "keep": [N]}``,
    hooks in the order image → room → host."""
    host = Inventory(conn).find_host(normalize_mac(mac))
    room = host.room if host else None
    wanted = [("image", image), ("room", room), ("host", host.mac if host else None)]
    out: list[dict[str, Any]] = []
    for scope, target in wanted:
        if not target:
            continue
        rows = conn.execute(
            "SELECT name, timeout, script FROM hooks WHERE scope=? AND target=? ORDER BY id",
            (scope, target),
        )
        for r in rows:
            out.append({"name": r["name"], "scope": scope, "target": target,
                        "timeout": int(r["timeout"]),
                        "script_b64": base64.b64encode(bytes(r["script"])).decode()})  # fmt: skip
    keep = sorted(
        {
            int(r[0])
            for scope, target in wanted[:2]
            if target
            for r in conn.execute(
                "SELECT partition FROM keep_rules WHERE scope=? AND target=?", (scope, target)
            )
        }
    )
    return {"room": room or "", "hooks": out, "keep": keep}
