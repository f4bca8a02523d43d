"""Authorization of every console route: each role and each action, anonymous refused.

One app per module (hashing passwords is deliberately slow); the routes' side effects
do not matter here — only whether the request got past authorization.  A separate test
checks that these tables (and the OpenAPI table) name every route the console has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_webui_kit import MAC1, MAC2, ROLE_USERS, add_host, add_image, login, make_app, slate

from appliance import db, users
from appliance.backups.schedules import Schedules
from appliance.users import PERMISSIONS
from webui.api.openapi import ROUTES as API_ROUTES

# (method, url pattern, permission); patterns use the fixtures' names below.
PAGES: list[tuple[str, str, str]] = [
    ("GET", "/", "view"),
    ("GET", "/account", "view"),
    ("POST", "/account/password", "view"),
    ("POST", "/account/tokens", "view"),
    ("POST", "/account/tokens/revoke", "view"),
    ("GET", "/images", "view"),
    ("GET", "/images/{image}", "view"),
    ("POST", "/images/{image}/{version}/note", "image.edit"),
    ("POST", "/images/{image}/{version}/verify", "image.edit"),
    ("POST", "/images/{image}/{version}/delete", "image.edit"),
    ("POST", "/images/{image}/{version}/promote", "image.promote"),
    ("POST", "/images/{image}/{version}/unpromote", "image.promote"),
    ("POST", "/images/{image}/{version}/keep", "image.promote"),
    ("POST", "/images/{image}/{version}/unkeep", "image.promote"),
    ("POST", "/images/{image}/policy", "image.edit"),
    ("POST", "/images/{image}/identity", "image.edit"),
    ("POST", "/images/{image}/prune", "image.edit"),
    ("GET", "/schedules", "view"),
    ("POST", "/schedules/add", "job.start"),
    ("POST", "/schedules/{schedule}/pause", "job.start"),
    ("POST", "/schedules/{schedule}/resume", "job.start"),
    ("POST", "/schedules/{schedule}/delete", "job.start"),
    ("GET", "/machines", "view"),
    ("POST", "/machines/add", "host.edit"),
    ("POST", "/machines/import", "host.edit"),
    ("POST", "/machines/seen/{seen}/register", "host.edit"),
    ("POST", "/machines/{mac}/wake", "host.edit"),
    ("POST", "/machines/{mac}/edit", "host.edit"),
    ("POST", "/machines/rooms/add", "host.edit"),
    ("POST", "/machines/rooms/{room}/wake", "host.edit"),
    ("POST", "/machines/{mac2}/delete", "host.delete"),
    ("GET", "/reimage", "job.start"),
    ("POST", "/reimage/confirm", "job.start"),
    ("POST", "/reimage/start", "job.start"),
    ("GET", "/reimage/capture", "job.start"),
    ("POST", "/reimage/capture", "job.start"),
    ("GET", "/jobs", "view"),
    ("GET", "/jobs/{job}", "view"),
    ("POST", "/jobs/{job}/cancel", "job.start"),
    ("POST", "/jobs/{job}/retry", "job.start"),
    ("GET", "/admin/users", "user.admin"),
    ("POST", "/admin/users/add", "user.admin"),
    ("POST", "/admin/users/{user}/role", "user.admin"),
    ("POST", "/admin/users/{user}/password", "user.admin"),
    ("POST", "/admin/users/{user}/delete", "user.admin"),
    ("GET", "/admin/audit", "audit"),
]
# Reachable without logging in, on purpose.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}

API_PARAMS = {
    "{job_id}": "{job}",
    "{mac}": "{mac}",
    "{version}": "{version}",
    "{schedule_id}": "{schedule}",
}


def _api_url(path: str) -> str:
    url = "/api/v1" + path
    if path.startswith("/images/"):
        url = url.replace("{name}", "{image}")
    elif path.startswith("/rooms/"):
        url = url.replace("{name}", "{room}")
    elif path.startswith("/users/"):
        url = url.replace("{name}", "{user}")
    elif path.startswith("/seen/"):
        url = url.replace("{mac}", "{seen}")
    elif path.startswith("/hosts/{mac}") and path.endswith("{mac}"):
        url = url.replace("{mac}", "{mac2}")  # delete: keep MAC1 for the other cases
    for k, v in API_PARAMS.items():
        url = url.replace(k, v)
    return url


API: list[tuple[str, str, str]] = [
    (m.upper(), _api_url(p), perm) for m, p, perm, *_ in API_ROUTES if perm is not None
]
ROLES = list(ROLE_USERS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("home")
    app = make_app(home)
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    image = add_image(app)
    with app.app_context():
        slate(app).inventory.record_seen("52:54:00:00:00:99", firmware="bios")
        job = slate(app).jobs.restore("pc1", "win11", actor="test")
        sched = Schedules(slate(app).db(), slate(app).layout).add(
            action="restore", image="win11", every="daily 02:00", host="pc2", actor="test"
        )
    conn = db.connect(home / "slate.db")
    users.add(conn, "zed", "viewer", "zed's password", "test")
    # API callers are other users than the page sessions: a page case revokes its own tokens.
    tokens = {}
    for role in ROLE_USERS:
        users.add(conn, f"api-{role}", role, "api caller password", "test")
        tokens[role] = users.new_token(conn, f"api-{role}", "test")
    conn.close()
    values = {
        "image": image.image,
        "version": image.version,
        "mac": MAC1,
        "mac2": MAC2,
        "seen": "52:54:00:00:00:99",
        "room": "lab-a",
        "job": str(job.id),
        "user": "zed",
        "schedule": str(sched.id),
    }
    sessions = {role: login(app, name) for role, name in ROLE_USERS.items()}
    yield {"app": app, "values": values, "tokens": tokens, "sessions": sessions}


def _fill(url: str, values: dict[str, str]) -> str:
    return url.format(**values)


def _send_page(world: dict, role: str | None, method: str, url: str) -> int:
    url = _fill(url, world["values"])
    if role is None:
        client = world["app"].test_client()
        resp = client.open(url, method=method, data={})
    elif method == "GET":
        resp = world["sessions"][role].get(url)
    else:
        resp = world["sessions"][role].post(url, {})
    resp.close()
    return int(resp.status_code)


def _send_api(world: dict, role: str | None, method: str, url: str) -> int:
    url = _fill(url, world["values"])
    headers = {"Authorization": f"Bearer {world['tokens'][role]}"} if role else {}
    kw = {"json": {}} if method in ("POST", "PATCH") else {}
    resp = world["app"].test_client().open(url, method=method, headers=headers, **kw)
    status = int(resp.status_code)
    resp.close()  # never read /events: it would stream for minutes
    return status


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "perm"), PAGES, ids=[f"{m} {u}" for m, u, _ in PAGES])
def test_page_role_matrix(world, role, method, url, perm):
    status = _send_page(world, role, method, url)
    if perm in PERMISSIONS[role]:
        assert status not in (401, 403), f"{role} refused {method} {url}"
        assert status < 500
    else:
        assert status == 403, f"{role} got {status} for {method} {url}"


@pytest.mark.parametrize(("method", "url", "perm"), PAGES, ids=[f"{m} {u}" for m, u, _ in PAGES])
def test_page_anonymous_refused(world, method, url, perm):
    status = _send_page(world, None, method, url)
    # GET → login page; POST without a session has no CSRF token either → 400.
    assert status == (302 if method == "GET" else 400)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "perm"), API, ids=[f"{m} {u}" for m, u, _ in API])
def test_api_role_matrix(world, role, method, url, perm):
    status = _send_api(world, role, method, url)
    if perm in PERMISSIONS[role]:
        assert status not in (401, 403), f"{role} refused {method} {url}"
        assert status < 500
    else:
        assert status == 403, f"{role} got {status} for {method} {url}"


@pytest.mark.parametrize(("method", "url", "perm"), API, ids=[f"{m} {u}" for m, u, _ in API])
def test_api_anonymous_refused(world, method, url, perm):
    assert _send_api(world, None, method, url) == 401


def test_openapi_is_public_and_lists_every_api_route(world):
    app = world["app"]
    doc = app.test_client().get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), "/api/v1" + p) for m, p, *_ in API_ROUTES}
    assert {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops} == {
        (m, p[len("/api/v1") :]) for m, p in documented
    }
    real = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.replace("<int:job_id>", "{job_id}")
            path = path.replace("<int:schedule_id>", "{schedule_id}")
            for part in ("name", "mac", "version"):
                path = path.replace(f"<{part}>", "{" + part + "}")
            real |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert real == documented


def test_tables_cover_every_console_route(world):
    app = world["app"]
    console = {"auth", "dashboard", "images", "machines", "reimage", "jobs", "admin", "schedules"}
    tested = {(m, u) for m, u, _ in PAGES} | PUBLIC
    for rule in app.url_map.iter_rules():
        bp = rule.endpoint.split(".")[0]
        if bp not in console or rule.endpoint.endswith(".static"):
            continue
        path = rule.rule
        for var, name in (
            ("<int:job_id>", "{job}"),
            ("<int:schedule_id>", "{schedule}"),
            ("<mac>", "{mac}"),
            ("<version>", "{version}"),
        ):
            path = path.replace(var, name)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            variants = {path.replace("<name>", v) for v in ("{image}", "{room}", "{user}")}
            variants |= {path.replace("{mac}", "{seen}"), path.replace("{mac}", "{mac2}")}
            variants.add(path)
            assert variants & {u for m, u in tested if m == method}, f"untested {method} {path}"
