"""Authorization matrix of the console and its JSON API, with literal expectations:
every route by role (anonymous, viewer, technician, admin) → status.

Each unsafe request runs on a fresh appliance (its side effects cannot change the next
case); GETs share one.  Requests carry an empty form / ``{}``, so an allowed call may
well be a 400 (bad input), a 302 (done, back to the page) or a 409 (the fixture's job
uses the version): what matters is that it is exactly the status written here.
Anonymous page POSTs are 400: with no session there is no CSRF token either.
Logging in is done by writing the session (scrypt is slow on purpose)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_webui_kit import MAC1, MAC2, ROLE_USERS, add_host, add_image, make_app, slate

from appliance import db, hooks, users
from appliance.backups.schedules import Schedules
from appliance.notify import outbox

ROLES = ["anonymous", "viewer", "technician", "admin"]

PAGES = """
GET    /                                          302 200 200 200
GET    /account                                   302 200 200 200
POST   /account/password                          400 302 302 302
POST   /account/tokens                            400 200 200 200
POST   /account/tokens/revoke                     400 302 302 302
GET    /images                                    302 200 200 200
GET    /images/{image}                            302 200 200 200
POST   /images/{image}/{version}/note             400 403 403 302
POST   /images/{image}/{version}/verify           400 403 403 302
POST   /images/{image}/{version}/delete           400 403 403 409
POST   /images/{image}/{version}/promote          400 403 302 302
POST   /images/{image}/{version}/unpromote        400 403 302 302
POST   /images/{image}/{version}/keep             400 403 302 302
POST   /images/{image}/{version}/unkeep           400 403 302 302
POST   /images/{image}/policy                     400 403 403 302
POST   /images/{image}/identity                   400 403 403 302
POST   /images/{image}/prune                      400 403 403 302
GET    /schedules                                 302 200 200 200
GET    /district                                  302 200 200 200
POST   /schedules/add                             400 403 400 400
POST   /schedules/{schedule}/pause                400 403 302 302
POST   /schedules/{schedule}/resume               400 403 302 302
POST   /schedules/{schedule}/delete               400 403 302 302
GET    /machines                                  302 200 200 200
POST   /machines/add                              400 403 400 400
POST   /machines/import                           400 403 302 302
POST   /machines/seen/{seen}/register             400 403 400 400
POST   /machines/{mac}/wake                       400 403 302 302
GET    /machines/{mac}                            302 200 200 200
GET    /machines/{mac}/history.csv                302 200 200 200
POST   /machines/{mac}/edit                       400 403 302 302
POST   /machines/rooms/add                        400 403 400 400
POST   /machines/rooms/{room}/wake                400 403 302 302
POST   /machines/{mac2}/delete                    400 403 403 302
GET    /machines/{mac}/hardware                   302 200 200 200
POST   /machines/{mac}/power                      400 403 400 400
POST   /machines/{mac}/register                   400 403 409 409
POST   /machines/{mac2}/register                  400 403 302 302
POST   /machines/rooms/{room}/power               400 403 400 400
GET    /rooms/{room}                              302 200 200 200
GET    /rooms/{room}/status                       302 200 200 200
POST   /rooms/{room}/after                        400 403 302 302
GET    /reimage                                   302 403 200 200
POST   /reimage/confirm                           400 403 302 302
POST   /reimage/start                             400 403 400 400
GET    /reimage/capture                           302 403 200 200
POST   /reimage/capture                           400 403 400 400
GET    /jobs                                      302 200 200 200
GET    /jobs/{job}                                302 200 200 200
POST   /jobs/{job}/cancel                         400 403 302 302
POST   /jobs/{job}/retry                          400 403 409 409
GET    /admin/users                               302 403 403 200
POST   /admin/users/add                           400 403 403 400
POST   /admin/users/{user}/role                   400 403 403 400
POST   /admin/users/{user}/password               400 403 403 400
POST   /admin/users/{user}/delete                 400 403 403 302
GET    /admin/audit                               302 403 403 200
GET    /admin/hooks                               302 403 403 200
POST   /admin/hooks/add                           400 403 403 400
POST   /admin/hooks/{hook}/delete                 400 403 403 302
POST   /admin/hooks/keep/add                      400 403 403 400
POST   /admin/hooks/keep/{keep}/delete            400 403 403 302
GET    /admin/notify                              302 403 403 200
POST   /admin/notify/webhook                      400 403 403 400
POST   /admin/notify/email                        400 403 403 400
POST   /admin/notify/{notify}/test                400 403 403 302
POST   /admin/notify/{notify}/delete              400 403 403 302
GET    /metrics                                   401 200 200 200
GET    /login                                     200 200 200 200
POST   /login                                     400 401 401 401
POST   /logout                                    400 302 302 302
"""

API = """
GET    /api/v1/openapi.json                       200 200 200 200
GET    /api/v1/me                                 401 200 200 200
GET    /api/v1/events                             401 200 200 200
GET    /api/v1/jobs                               401 200 200 200
POST   /api/v1/jobs                               401 403 400 400
GET    /api/v1/jobs/{job}                         401 200 200 200
GET    /api/v1/jobs/{job}/log                     401 200 200 200
POST   /api/v1/jobs/{job}/cancel                  401 403 200 200
POST   /api/v1/jobs/{job}/retry                   401 403 409 409
POST   /api/v1/reimage/preview                    401 403 400 400
GET    /api/v1/hosts                              401 200 200 200
POST   /api/v1/hosts                              401 403 400 400
PATCH  /api/v1/hosts/{mac2}                       401 403 200 200
DELETE /api/v1/hosts/{mac2}                       401 403 403 200
POST   /api/v1/hosts/import                       401 403 400 400
POST   /api/v1/hosts/{mac}/wake                   401 403 200 200
GET    /api/v1/rooms                              401 200 200 200
POST   /api/v1/rooms                              401 403 400 400
PATCH  /api/v1/rooms/{room}                       401 403 400 400
POST   /api/v1/rooms/{room}/wake                  401 403 200 200
GET    /api/v1/seen                               401 200 200 200
POST   /api/v1/seen/{seen}/register               401 403 400 400
GET    /api/v1/images                             401 200 200 200
GET    /api/v1/images/{image}                     401 200 200 200
PATCH  /api/v1/images/{image}/{version}           401 403 403 200
DELETE /api/v1/images/{image}/{version}           401 403 403 409
POST   /api/v1/images/{image}/{version}/verify    401 403 403 202
GET    /api/v1/images/{image}/{version}/verify    401 200 200 200
GET    /api/v1/images/{image}/backups             401 200 200 200
PATCH  /api/v1/images/{image}/policy              401 403 403 200
POST   /api/v1/images/{image}/prune               401 403 403 200
POST   /api/v1/images/{image}/{version}/promote   401 403 200 200
DELETE /api/v1/images/{image}/{version}/promote   401 403 200 200
POST   /api/v1/images/{image}/{version}/keep      401 403 200 200
DELETE /api/v1/images/{image}/{version}/keep      401 403 200 200
GET    /api/v1/schedules                          401 200 200 200
POST   /api/v1/schedules                          401 403 400 400
DELETE /api/v1/schedules/{schedule}               401 403 200 200
POST   /api/v1/schedules/{schedule}/pause         401 403 200 200
POST   /api/v1/schedules/{schedule}/resume        401 403 200 200
GET    /api/v1/users                              401 403 403 200
POST   /api/v1/users                              401 403 403 400
DELETE /api/v1/users/{user}                       401 403 403 200
GET    /api/v1/audit                              401 403 403 200
"""


def _cases(table: str) -> list[tuple[str, str, str, int]]:
    out = []
    for line in table.strip().splitlines():
        method, url, *codes = line.split()
        out += [(method, url, role, int(c)) for role, c in zip(ROLES, codes, strict=True)]
    return out


class World:
    def __init__(self, home: Path) -> None:
        self.app = app = make_app(home)
        add_host(app, MAC1, "pc1")
        add_host(app, MAC2, "pc2")
        image = add_image(app)
        with app.app_context():
            slate(app).inventory.record_seen("52:54:00:00:00:99", firmware="bios")
            job = slate(app).jobs.restore("pc1", "win11", actor="test")
            schedule = Schedules(slate(app).db(), slate(app).layout).add(
                action="restore", image="win11", every="daily 02:00", host="pc2", actor="test"
            )
        conn = db.connect(home / "slate.db")
        users.add(conn, "zed", "viewer", "zed's password", "test")
        target = outbox.add_webhook(conn, "http://127.0.0.1:9/", "s", "", "test")
        hook = hooks.add_hook(conn, "image", image.image, "a.sh", b"#!/bin/sh\n", actor="test")
        keep = hooks.add_keep(conn, "image", image.image, 2, actor="test")
        conn.close()
        self.values = {
            "image": image.image,
            "version": image.version,
            "mac": MAC1,
            "mac2": MAC2,
            "seen": "52:54:00:00:00:99",
            "room": "lab-a",
            "job": str(job.id),
            "user": "zed",
            "schedule": str(schedule.id),
            "notify": str(target.id),
            "hook": str(hook.id),
            "keep": str(keep.id),
        }

    def page(self, role: str, method: str, url: str) -> int:
        client = self.app.test_client()
        if role != "anonymous":
            name = ROLE_USERS[role]
            with self.app.app_context():
                epoch = users.get(slate(self.app).db(), name).epoch
            with client.session_transaction() as s:
                s.update(user=name, epoch=epoch, csrf="t")
        data = {} if method == "GET" else {"csrf_token": "t"}
        resp = client.open(url.format(**self.values), method=method, data=data)
        resp.close()
        return int(resp.status_code)

    def api(self, role: str, method: str, url: str) -> int:
        headers = {}
        if role != "anonymous":
            with self.app.app_context():
                token = users.new_token(slate(self.app).db(), ROLE_USERS[role], "test")
            headers["Authorization"] = f"Bearer {token}"
        kw = {"json": {}} if method in ("POST", "PATCH") else {}
        resp = self.app.test_client().open(
            url.format(**self.values), method=method, headers=headers, **kw
        )
        resp.close()  # never read /events: it would stream
        return int(resp.status_code)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield World(tmp_path_factory.mktemp("home"))


def _world(method: str, shared: World, tmp_path: Path) -> World:
    if method == "GET":
        return shared
    home = tmp_path / "home"
    home.mkdir()
    return World(home)


@pytest.mark.parametrize(("method", "url", "role", "expected"), _cases(PAGES))
def test_page_matrix(shared, tmp_path, method, url, role, expected):
    assert _world(method, shared, tmp_path).page(role, method, url) == expected


@pytest.mark.parametrize(("method", "url", "role", "expected"), _cases(API))
def test_api_matrix(shared, tmp_path, method, url, role, expected):
    assert _world(method, shared, tmp_path).api(role, method, url) == expected


def test_every_console_route_has_a_row(shared):
    rows = {(m, u) for m, u, _r, _c in _cases(PAGES) + _cases(API)}
    names = {"<int:job_id>": "{job}", "<version>": "{version}"}
    console = {"auth", "dashboard", "images", "machines", "reimage", "jobs", "admin", "api",
               "schedules", "rooms", "notify", "metrics", "hostpage"}  # fmt: skip
    console |= {"hooks"}  # post-restore hooks and kept partitions (issue 13)
    missing = []
    for rule in shared.app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in console or rule.endpoint.endswith(".static"):
            continue
        path = rule.rule
        for var, name in names.items():
            path = path.replace(var, name)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            # Variable names differ by route ({mac} vs {mac2}, <name> = image/room/user).
            shape = _shape(path)
            if not any(m == method and _shape(u) == shape for m, u in rows):
                missing.append(f"{method} {rule.rule}")
    assert not missing, f"routes without a row in the matrix: {missing}"


def _shape(url: str) -> str:
    return re.sub(r"(\{[a-z0-9]+\}|<[a-z:_]+>)", "*", url)
