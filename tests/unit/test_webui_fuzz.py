"""Fuzzing the console's forms (hypothesis): random and mutated fields on every form
route, as an admin with a valid CSRF token, plus the login form anonymously.  No
answer is a server error, and a refused request (4xx) changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_webui_kit import MAC1, MAC2, add_host, add_image, make_app, slate

from appliance import users
from appliance.jobs import testing as job_rows
from appliance.machines import testing as host_rows

FORMS = [
    "/login",
    "/logout",
    "/account/password",
    "/account/tokens",
    "/account/tokens/revoke",
    "/images/{image}/{version}/note",
    "/images/{image}/{version}/verify",
    "/images/{image}/{version}/delete",
    "/machines/add",
    "/machines/import",
    "/machines/seen/{seen}/register",
    "/machines/{mac}/wake",
    "/machines/{mac}/edit",
    "/machines/rooms/add",
    "/machines/rooms/{room}/wake",
    "/machines/{mac2}/delete",
    "/reimage/confirm",
    "/reimage/start",
    "/reimage/capture",
    "/jobs/{job}/cancel",
    "/jobs/{job}/retry",
    "/admin/users/add",
    "/admin/users/{user}/role",
    "/admin/users/{user}/password",
    "/admin/users/{user}/delete",
]
FIELDS = [
    "name", "mac", "room", "ip", "disk_hint", "image", "version", "when", "note", "reason",
    "role", "password", "current", "new", "label", "csv", "next", "auto_promote", "q",
]  # fmt: skip


class World:
    def __init__(self, home: Path) -> None:
        self.app = app = make_app(home)
        app.config["SLATE_WOL_TARGET"] = "127.0.0.1:9"
        add_host(app, MAC1, "pc1")
        add_host(app, MAC2, "pc2")
        image = add_image(app)
        with app.app_context():
            slate(app).inventory.record_seen("52:54:00:00:00:99", firmware="bios")
            job = slate(app).jobs.restore("pc1", "win11", actor="test")
            users.add(slate(app).db(), "zed", "viewer", "zed's password", "test")
        self.values = {
            "image": image.image,
            "version": image.version,
            "mac": MAC1,
            "mac2": MAC2,
            "seen": "52:54:00:00:00:99",
            "room": "lab-a",
            "job": str(job.id),
            "user": "zed",
        }

    def snapshot(self) -> Any:
        with self.app.app_context():
            conn = slate(self.app).db()
            return [
                host_rows.hosts(conn),
                [tuple(r) for r in job_rows.rows(conn, "id", "state", "image", "version")],
            ] + [
                [tuple(r) for r in conn.execute(q)]
                for q in (
                    "SELECT * FROM rooms ORDER BY name",
                    "SELECT name, role, password_hash, epoch FROM users ORDER BY name",
                    "SELECT image, version, note FROM versions ORDER BY 1, 2",
                    "SELECT actor, action, target FROM audit WHERE action NOT LIKE 'login.%'",
                )
            ]

    def admin(self) -> Any:
        client = self.app.test_client()
        with self.app.app_context():
            epoch = users.get(slate(self.app).db(), "ada").epoch
        with client.session_transaction() as s:
            s.update(user="ada", epoch=epoch, csrf="t")
        return client


_WORLD: list[World] = []

text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", MAC1, "lab-a", "win11", "admin", "viewer", "+2h", "18:30", "serial=X"]
    ),
    st.text("0123456789abcdefABCDEF:-.,=@/\\%\n\r\t\x00", max_size=40),
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from(FORMS),
    form=st.dictionaries(st.sampled_from(FIELDS), text, max_size=6),
    macs=st.lists(text, max_size=3),
    csrf=st.sampled_from(["t", "t", "t", "", "wrong", "ü"]),
)
def test_console_forms_fuzz_no_500_and_refusals_change_nothing(
    tmp_path_factory, route, form, macs, csrf
):
    if not _WORLD:
        _WORLD.append(World(tmp_path_factory.mktemp("home")))
    w = _WORLD[0]
    url = route.format(**w.values)
    data: dict[str, Any] = {**form, "csrf_token": csrf}
    if macs:
        data["mac"] = macs
    client = w.app.test_client() if route == "/login" else w.admin()
    before = w.snapshot()
    resp = client.post(url, data=data)
    status = resp.status_code
    resp.close()
    event(f"status {status}")
    assert status < 500, (url, data, resp.get_data()[:300])
    if status >= 400:
        assert w.snapshot() == before, (url, data, status)
