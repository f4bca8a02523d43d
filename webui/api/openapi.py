"""The OpenAPI 3.1 document of ``/api/v1`` (served at ``/api/v1/openapi.json``).

One table, ``ROUTES``, lists every endpoint with the permission it needs; a unit test
checks that it matches the routes the blueprint really has, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from appliance import __version__

# (method, path, permission or None = public, summary, request schema, response schema)
ROUTES: tuple[tuple[str, str, str | None, str, str | None, str], ...] = (
    ("get", "/openapi.json", None, "This document", None, "Object"),
    ("get", "/me", "view", "Who the caller is and what they may do", None, "Me"),
    ("get", "/events", "view", "Server-sent events: jobs (or ?job=ID: one job + log)",
     None, "EventStream"),
    ("get", "/jobs", "view", "Unfinished jobs (?all=1: every job, ?host=MAC)", None, "Jobs"),
    ("post", "/jobs", "job.start", "Start restore jobs (hosts or room) or a capture",
     "StartJob", "Jobs"),
    ("get", "/jobs/{job_id}", "view", "One job", None, "Job"),
    ("get", "/jobs/{job_id}/log", "view", "The client's log lines of a job", None, "Log"),
    ("post", "/jobs/{job_id}/cancel", "job.start", "Cancel an unfinished job", "Reason", "Job"),
    ("post", "/jobs/{job_id}/retry", "job.start", "Retry a failed/cancelled job", None, "Job"),
    ("post", "/reimage/preview", "job.start", "Which machines a restore would overwrite",
     "Targets", "Hosts"),
    ("get", "/hosts", "view", "Registered machines (?q=search, ?room=NAME)", None, "Hosts"),
    ("post", "/hosts", "host.edit", "Register a machine", "NewHost", "Host"),
    ("patch", "/hosts/{mac}", "host.edit",
     "Change a machine (name, room, ip, disk_hint; \"\" clears)", "EditHost", "Host"),
    ("delete", "/hosts/{mac}", "host.delete", "Delete a machine", None, "Host"),
    ("post", "/hosts/import", "host.edit", "Import CSV mac,name,room[,ip] (all or nothing)",
     "Csv", "Hosts"),
    ("post", "/hosts/{mac}/wake", "host.edit", "Send a Wake-on-LAN magic packet", None, "Sent"),
    ("get", "/rooms", "view", "Rooms", None, "Rooms"),
    ("post", "/rooms", "host.edit", "Add a room", "NewRoom", "Room"),
    ("patch", "/rooms/{name}", "host.edit",
     "Set a room's 'after' (when a restore is done: reboot, poweroff, null = none)",
     "EditRoom", "Room"),
    ("post", "/rooms/{name}/wake", "host.edit", "Wake every machine of a room", None, "Sent"),
    ("get", "/seen", "view", "Machines seen booting that are not registered", None, "Seen"),
    ("post", "/seen/{mac}/register", "host.edit", "Register a seen machine", "NewSeen", "Host"),
    ("get", "/images", "view", "Images with their versions", None, "Images"),
    ("get", "/images/{name}", "view", "One image: versions, disks, sharing", None, "Image"),
    ("patch", "/images/{name}/{version}", "image.edit", "Change a version's note", "Note",
     "Object"),
    ("delete", "/images/{name}/{version}", "image.edit",
     "Delete a version (refused while a job uses it)", None, "Object"),
    ("post", "/images/{name}/{version}/verify", "image.edit",
     "Start verifying every chunk (in the background; 202)", None, "Verify"),
    ("get", "/images/{name}/{version}/verify", "view",
     "Verification status: never, running (done/total bytes), ok, damaged, error", None,
     "Verify"),
    ("get", "/images/{name}/backups", "view",
     "Promotion and retention policy, versions with what each shares with the previous, "
     "and what retention would remove now", None, "Backups"),
    ("patch", "/images/{name}/policy", "image.edit",
     "Set auto_promote and keep_last/keep_daily/keep_weekly/keep_monthly (null: no rule)",
     "Policy", "Policy"),
    ("post", "/images/{name}/prune", "image.edit",
     "Remove what retention does not keep, then gc", None, "Object"),
    ("post", "/images/{name}/{version}/promote", "image.promote",
     "Promote a version: NAME, rooms and rules may resolve to it", None, "Object"),
    ("delete", "/images/{name}/{version}/promote", "image.promote",
     "Make a version a candidate again", None, "Object"),
    ("post", "/images/{name}/{version}/keep", "image.promote",
     "Never let retention remove this version", None, "Object"),
    ("delete", "/images/{name}/{version}/keep", "image.promote",
     "Leave this version to retention again", None, "Object"),
    ("get", "/schedules", "view", "Recurring captures and restores", None, "Schedules"),
    ("post", "/schedules", "job.start",
     "Add a schedule (host or room, capture or restore, every)", "NewSchedule", "Schedule"),
    ("delete", "/schedules/{schedule_id}", "job.start", "Delete a schedule", None, "Schedule"),
    ("post", "/schedules/{schedule_id}/pause", "job.start", "Pause a schedule", None,
     "Schedule"),
    ("post", "/schedules/{schedule_id}/resume", "job.start",
     "Resume a schedule (occurrences that came while paused are not run)", None, "Schedule"),
    ("get", "/users", "user.admin", "Users", None, "Users"),
    ("post", "/users", "user.admin", "Add a user", "NewUser", "User"),
    ("delete", "/users/{name}", "user.admin", "Delete a user", None, "Object"),
    ("get", "/audit", "audit", "Audit log: who started, cancelled, deleted what", None,
     "Audit"),
)  # fmt: skip

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
BOOL: dict[str, Any] = {"type": "boolean"}
LIST_S: dict[str, Any] = {"type": "array", "items": STR}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


SCHEMAS: dict[str, Any] = {
    "Object": {"type": "object"},
    "Error": _obj({"error": STR, "hint": STR}, ("error",)),
    "EventStream": {"type": "string", "description": "text/event-stream: events 'jobs'/'job'"},
    "Me": _obj({"name": STR, "role": STR, "permissions": LIST_S}),
    "Job": _obj({
        "id": INT, "host": STR, "host_name": STR, "action": STR, "image": STR, "version": STR,
        "state": STR, "phase": STR, "bytes_done": INT, "bytes_total": INT, "percent": NUM,
        "rate": NUM, "eta": NUM, "reason": STR, "created_by": STR, "created_at": STR,
        "not_before": STR, "finished_at": STR, "verified_bytes": INT, "result_version": STR,
        "options": {"type": "object"}, "active": BOOL,
    }),
    "Jobs": _array("Job"),
    "Log": {"type": "array", "items": _obj({"at": STR, "line": STR})},
    "StartJob": _obj({
        "action": {"enum": ["restore", "capture"]},
        "image": {"type": "string", "description": "NAME or NAME@VERSION"},
        "hosts": LIST_S, "room": STR, "host": STR, "note": STR,
        "at": {"type": "string", "description": "start time: 18:30, +2h, ISO 8601"},
        "after": {"enum": ["reboot", "poweroff", None],
                  "description": "restore: when done; absent = the room's setting, else reboot"},
    }, ("action", "image")),
    "Reason": _obj({"reason": STR}),
    "Targets": _obj({"hosts": LIST_S, "room": STR}),
    "EditHost": _obj({"name": STR, "room": STR, "ip": STR, "disk_hint": STR}),
    "Host": _obj({
        "mac": STR, "name": STR, "room": STR, "ip": STR, "disk_hint": STR, "firmware": STR,
        "auto_restore": STR, "created_at": STR, "active_job": INT, "busy": STR,
    }),
    "Hosts": _array("Host"),
    "NewHost": _obj({"mac": STR, "name": STR, "room": STR, "disk_hint": STR}, ("mac", "name")),
    "NewSeen": _obj({"name": STR, "room": STR}, ("name",)),
    "Csv": _obj({"csv": STR}, ("csv",)),
    "Sent": _obj({"sent": INT}),
    "Room": _obj({"name": STR, "note": STR, "auto_restore": STR, "hosts": INT,
                  "after": {"enum": ["reboot", "poweroff", None]}}),
    "EditRoom": _obj({"after": {"enum": ["reboot", "poweroff", None]}}, ("after",)),
    "Rooms": _array("Room"),
    "NewRoom": _obj({"name": STR, "note": STR}, ("name",)),
    "Seen": {"type": "array", "items": _obj({
        "mac": STR, "firmware": STR, "arch": INT, "uuid": STR, "ip": STR,
        "first_seen": STR, "last_seen": STR, "boots": INT,
    })},
    "Version": _obj({
        "image": STR, "version": STR, "created": STR, "note": STR, "source": STR,
        "logical_size": INT, "stored_size": INT, "in_use": BOOL,
        "chunks": INT, "shared_chunks": INT, "shared_bytes": INT,
        "disks": {"type": "array", "items": {"type": "object"}},
    }),
    "Image": _obj({"name": STR, "versions": _array("Version")}),
    "Images": _array("Image"),
    "Note": _obj({"note": STR}, ("note",)),
    "Verify": _obj({
        "state": {"enum": ["never", "running", "ok", "damaged", "error"]},
        "done": INT, "total": INT, "chunks": INT, "damaged": LIST_S, "message": STR,
        "finished_at": STR,
    }),
    "Policy": _obj({
        "image": STR, "auto_promote": BOOL, "keep_last": INT, "keep_daily": INT,
        "keep_weekly": INT, "keep_monthly": INT, "pruned_at": STR, "identity": BOOL,
    }),
    "Backups": _obj({
        "policy": _ref("Policy"),
        "history": {"type": "array", "items": _obj({
            "version": STR, "promoted": BOOL, "keep": BOOL, "stored_size": INT, "chunks": INT,
            "shared_chunks": INT, "shared_bytes": INT, "new_chunks": INT, "new_bytes": INT,
        })},
        "retention": _obj({"keep": {"type": "object"}, "remove": LIST_S, "applies": BOOL}),
    }),
    "Schedule": _obj({
        "id": INT, "host": STR, "host_name": STR, "room": STR, "target": STR,
        "action": {"enum": ["capture", "restore"]}, "image": STR, "every": STR, "wake": BOOL,
        "paused": BOOL, "note": STR, "next_run": STR, "last_occurrence": STR,
        "last_result": STR, "created_by": STR, "created_at": STR, "since": STR,
    }),
    "Schedules": _array("Schedule"),
    "NewSchedule": _obj({
        "action": {"enum": ["capture", "restore"]}, "host": STR, "room": STR,
        "image": {"type": "string", "description": "capture: NAME; restore: NAME[@V|@DATE|@-3d]"},
        "every": {"type": "string", "description": "daily 02:00, mon,thu 18:30, weekly sun 03:00"},
        "wake": BOOL, "note": STR,
    }, ("action", "image", "every")),
    "User": _obj({"name": STR, "role": {"enum": ["admin", "technician", "viewer"]}}),
    "Users": _array("User"),
    "NewUser": _obj({"name": STR, "role": STR, "password": STR}, ("name", "role", "password")),
    "Audit": {"type": "array", "items": _obj({
        "id": INT, "at": STR, "actor": STR, "action": STR, "target": STR, "detail": STR,
    })},
}  # fmt: skip


def _error() -> dict[str, Any]:
    return {"application/json": {"schema": _ref("Error")}}


def _operation(path: str, perm: str | None, summary: str, req: str | None, resp: str) -> Any:
    ok = {"description": "OK", "content": {"application/json": {"schema": _ref(resp)}}}
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": ok,
            "400": {"description": "bad request", "content": _error()},
            "404": {"description": "not found", "content": _error()},
            "409": {"description": "conflicts with the current state", "content": _error()},
        },
    }
    params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    if params:
        op["parameters"] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": INT if p in ("job_id", "schedule_id") else STR,
            }
            for p in params
        ]
    if req:
        content = {"application/json": {"schema": _ref(req)}}
        op["requestBody"] = {"required": True, "content": content}
    if perm is None:
        op["security"] = []
    else:
        op["x-slate-permission"] = perm
        op["responses"]["401"] = {"description": "no or wrong credentials", "content": _error()}
        op["responses"]["403"] = {"description": f"role lacks '{perm}'", "content": _error()}
    return op


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, perm, summary, req, resp in ROUTES:
        paths.setdefault(path, {})[method] = _operation(path, perm, summary, req, resp)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Slate console API",
            "version": __version__,
            "description": "Everything the web console does. Roles: admin (everything), "
            "technician (view, job.start, host.edit, image.promote), viewer (view). Unsafe "
            "requests with the session cookie need the X-CSRF-Token header; bearer tokens do not.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `slate user token NAME`",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "slate_session"},
            },
        },
    }
