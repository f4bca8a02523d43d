"""The console's smaller holes, closed: ``next=``, CSRF tokens that are not ASCII, login
throttling by name *and* address, body size, the warning on a job whose token was used
from another machine."""

from __future__ import annotations

import pytest
from test_webui_kit import MAC1, PW, add_host, add_image, app, audit_actions, csrf_of, slate
from test_webui_kit import viewer as viewer

from webui import throttle
from webui.auth import is_same_site_path
from webui.throttle import Throttle

__all__ = ["app", "viewer"]

EVIL_NEXT = [
    "//evil.example/x",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "/%5Cevil.example",
    "/%2F/evil.example",
    "%2F%2Fevil.example",
    "https:evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\tevil",
    "/\n/evil.example",
    "/ /evil.example",
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_next_after_login_refuses_other_hosts(app, target):
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    data = {"name": "ada", "password": PW, "csrf_token": token, "next": target}
    resp = client.post("/login", data=data)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/jobs", "/jobs/3", "/machines?q=lab-1", "/images/win11"])
def test_next_after_login_keeps_same_site_paths(app, target):
    assert is_same_site_path(target)
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    data = {"name": "ada", "password": PW, "csrf_token": token, "next": target}
    assert client.post("/login", data=data).headers["Location"] == target


def test_non_ascii_csrf_token_is_400_not_500(app):
    client = app.test_client()
    csrf_of(client.get("/login").text)
    form = {"name": "ada", "password": PW, "csrf_token": "jeton-ä€💥"}
    assert client.post("/login", data=form).status_code == 400
    headers = {"X-CSRF-Token": "jeton-\u00e4\u00e9"}  # latin-1: what a header can carry
    assert (
        client.post("/login", data={"name": "ada", "password": PW}, headers=headers).status_code
        == 400
    )


def _try(app, address: str, name: str, password: str) -> int:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    token = csrf_of(client.get("/login").text)
    form = {"name": name, "password": password, "csrf_token": token}
    return int(client.post("/login", data=form).status_code)


def test_lockout_of_a_name_from_one_address_does_not_lock_it_out_elsewhere(app):
    student, desk = "10.0.0.66", "192.168.1.10"
    assert [_try(app, student, "ada", "guess") for _ in range(5)] == [401] * 5
    assert _try(app, student, "ada", PW) == 429  # locked there, even the right password
    assert _try(app, desk, "ada", PW) == 302  # the admin at the desk is not


def test_throttled_tries_write_no_audit_row_each(app):
    for _ in range(5):
        _try(app, "10.0.0.66", "ada", "guess")
    for _ in range(10):
        assert _try(app, "10.0.0.66", "ada", "guess") == 429
    rows = [a for a in audit_actions(app) if a[1].startswith("login")]
    assert rows == [("web:ada", "login.throttled")]  # one for the lockout, none per try


def test_many_names_from_one_address_are_throttled_by_address():
    t = Throttle(per_name=5, per_address=20, window=60)
    for i in range(20):
        t.failed(f"user{i}", "10.0.0.66", now=0)
    assert t.wait_seconds("someone-else", "10.0.0.66", now=1) == 59
    assert t.wait_seconds("someone-else", "10.0.0.5", now=1) == 0


def test_old_throttle_keys_are_evicted(monkeypatch):
    monkeypatch.setattr(throttle, "MAX_KEYS", 100)
    t = Throttle(window=60)
    for i in range(1000):
        t.failed(f"name{i}", f"10.0.{i // 250}.{i % 250}", now=i)  # each ages out at i+60
    assert len(t) <= 100
    t.failed("x", "10.9.9.9", now=10_000)
    assert len(t) <= 100
    # Nothing a flood of made-up keys did locks a fresh pair.
    assert t.wait_seconds("ada", "10.0.0.1", now=10_000) == 0


def test_login_body_is_small(app):
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    form = {"name": "ada", "password": "x" * (2 * 1024 * 1024), "csrf_token": token}
    assert client.post("/login", data=form).status_code == 413


def test_job_page_warns_when_the_token_was_used_from_another_machine(app, viewer):
    add_image(app)
    add_host(app, MAC1, "pc-01")
    with app.app_context():
        job = slate(app).jobs.restore("pc-01", "win11", actor="test")
        token = slate(app).jobs.token(job.id)
    machine = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert (
        machine.get(
            "/api/client/v1/job", headers=auth, environ_base={"REMOTE_ADDR": "10.0.0.5"}
        ).status_code
        == 200
    )
    page = viewer.get(f"/jobs/{job.id}").text
    assert "10.0.0.5" in page and "used from another machine" not in page
    thief = {"REMOTE_ADDR": "10.0.0.66"}
    assert machine.get("/api/client/v1/job", headers=auth, environ_base=thief).status_code == 403
    page = viewer.get(f"/jobs/{job.id}").text
    assert "used from another machine" in page and "10.0.0.66" in page


def _open_stream(viewer):
    resp = viewer.get("/api/v1/events", buffered=False)
    if resp.status_code == 200:
        next(iter(resp.response))  # the stream has started ("retry: …")
    return resp


def test_live_event_streams_are_capped_and_freed(app, viewer, monkeypatch):
    from webui.api import events

    monkeypatch.setattr(events, "MAX_STREAMS", 2)
    first, second = _open_stream(viewer), _open_stream(viewer)
    assert first.status_code == second.status_code == 200
    third = _open_stream(viewer)
    assert third.status_code == 503 and third.headers["Retry-After"] == "30"
    # (Closed last-opened first: in one thread each started stream holds its context.)
    second.close()  # a closed stream frees its place
    again = _open_stream(viewer)
    assert again.status_code == 200
    again.close()
    first.close()
