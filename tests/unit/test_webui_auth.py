"""Logging in, sessions, CSRF, throttling, API tokens and security headers."""

from __future__ import annotations

from test_webui_kit import PW, add_host, admin, app, audit_actions, csrf_of, login, slate, tech
from test_webui_kit import viewer as viewer

from appliance import db, users
from webui.throttle import Throttle

__all__ = ["admin", "app", "tech"]


def test_anonymous_page_redirects_to_login_and_api_says_401(app):
    client = app.test_client()
    resp = client.get("/machines")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
    resp = client.get("/api/v1/hosts")
    assert resp.status_code == 401 and "error" in resp.json
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_login_sets_hardened_session_cookie(app):
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"name": "ada", "password": PW, "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    # Behind https the same cookie is marked Secure.
    client = app.test_client()
    token = csrf_of(client.get("/login", base_url="https://slate.lab").text)
    resp = client.post(
        "/login",
        data={"name": "ada", "password": PW, "csrf_token": token},
        base_url="https://slate.lab",
    )
    assert "Secure" in resp.headers["Set-Cookie"]


def test_secure_cookie_behind_a_trusted_tls_proxy_only(app):
    proxied = {"X-Forwarded-Proto": "https"}
    assert "Secure" not in app.test_client().get("/login", headers=proxied).headers["Set-Cookie"]
    app.config["SLATE_TRUST_PROXY"] = True
    assert "Secure" in app.test_client().get("/login", headers=proxied).headers["Set-Cookie"]


def test_wrong_password_and_unknown_user_look_the_same(app):
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    a = client.post("/login", data={"name": "ada", "password": "nope", "csrf_token": token})
    b = client.post("/login", data={"name": "zz", "password": "nope", "csrf_token": token})
    assert a.status_code == b.status_code == 401
    assert "Wrong name or password" in a.text and "Wrong name or password" in b.text


def test_login_throttled_after_repeated_failures(app):
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        r = client.post("/login", data={"name": "ada", "password": "bad", "csrf_token": token})
        assert r.status_code == 401
    # Even the right password is refused now, without being checked.
    r = client.post("/login", data={"name": "ada", "password": PW, "csrf_token": token})
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert ("web:ada", "login.throttled") in audit_actions(app)


def test_throttle_window_expires():
    t = Throttle(per_name=2, per_address=10, window=60)
    t.failed("ada", "1.2.3.4", now=0)
    t.failed("ada", "1.2.3.4", now=1)
    assert t.wait_seconds("ada", "1.2.3.4", now=2) == 58
    assert t.wait_seconds("bob", "1.2.3.4", now=2) == 0
    assert t.wait_seconds("ada", "1.2.3.4", now=61) == 0


def test_open_redirect_refused(app):
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    data = {"name": "ada", "password": PW, "csrf_token": token, "next": "//evil.example/x"}
    assert client.post("/login", data=data).headers["Location"] == "/"
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    data.update(csrf_token=token, next="/jobs")
    assert client.post("/login", data=data).headers["Location"] == "/jobs"


def test_first_start_page_says_how_to_create_the_admin(home):
    from appliance.config import Layout
    from appliance.http import create_app

    client = create_app(Layout(home)).test_client()
    assert "slate user add NAME --role admin" in client.get("/login").text


def test_csrf_enforced_on_forms_and_cookie_api(app, tech):
    # No token, wrong token: refused before anything happens.
    data = {"mac": "52:54:00:00:00:09", "name": "pc9"}
    assert tech.client.post("/machines/add", data=data).status_code == 400
    bad = {**data, "csrf_token": "x" * 43}
    assert tech.client.post("/machines/add", data=bad).status_code == 400
    resp = tech.client.post("/api/v1/hosts", json=data)
    assert resp.status_code == 400 and "CSRF" in resp.json["error"]
    with app.app_context():
        assert slate(app).inventory.hosts() == []
    # With the token it works.
    assert tech.post("/machines/add", data).status_code == 302
    assert tech.api("POST", "/api/v1/hosts", {"mac": MAC_B, "name": "pc10"}).status_code == 201


MAC_B = "52:54:00:00:00:0b"


def test_login_form_itself_needs_csrf(app):
    client = app.test_client()
    resp = client.post("/login", data={"name": "ada", "password": PW})
    assert resp.status_code == 400


def test_logout_ends_session(admin):
    assert admin.get("/jobs").status_code == 200
    assert admin.post("/logout").status_code == 302
    assert admin.get("/jobs").status_code == 302


def test_password_change_ends_other_sessions(app, home):
    first, second = login(app, "tom"), login(app, "tom")
    resp = first.post("/account/password", {"current": PW, "new": PW + " again"})
    assert resp.status_code == 302
    assert first.get("/jobs").status_code == 200
    assert second.get("/jobs").status_code == 302  # logged out
    assert second.get("/api/v1/me").status_code == 401


def _token(home, name):
    conn = db.connect(home / "slate.db")
    try:
        return users.new_token(conn, name, "test")
    finally:
        conn.close()


def test_api_tokens_carry_their_own_user_only(app, home):
    tom, vic = _token(home, "tom"), _token(home, "vic")
    client = app.test_client()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {vic}"})
    assert me.json["name"] == "vic" and me.json["role"] == "viewer"
    host = {"mac": "52:54:00:00:00:0c", "name": "pc12"}
    # The viewer's token cannot do what the technician's can; no CSRF needed for bearer.
    r = client.post("/api/v1/hosts", json=host, headers={"Authorization": f"Bearer {vic}"})
    assert r.status_code == 403
    r = client.post("/api/v1/hosts", json=host, headers={"Authorization": f"Bearer {tom}"})
    assert r.status_code == 201
    assert ("api:tom", "host.add") in audit_actions(app)
    # A tampered, revoked or deleted user's token is useless.
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tom}x"})
    assert r.status_code == 401
    conn = db.connect(home / "slate.db")
    users.revoke_tokens(conn, "tom", "test")
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {tom}"}).status_code == 401
    users.remove(conn, "vic", "test")
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {vic}"}).status_code == 401


def test_bad_bearer_does_not_fall_back_to_the_session_cookie(tech):
    resp = tech.client.get("/api/v1/me", headers={"Authorization": "Bearer slt_wrong"})
    assert resp.status_code == 401


def test_job_token_of_a_restore_client_is_no_user_token(app, tech):
    add_host(app, "52:54:00:00:00:0d", "pc13")
    from test_webui_kit import add_image

    add_image(app)
    with app.app_context():
        job = slate(app).jobs.restore("pc13", "win11", actor="test")
        token = slate(app).jobs.token(job.id)
    resp = app.test_client().get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401


def test_account_token_shown_once_and_works(app, viewer):
    page = viewer.post("/account/tokens", {"label": "script"}).text
    import re

    token = re.search(r'id="new-token">(slt_[^<]+)<', page).group(1)
    resp = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.json["name"] == "vic"
    assert token not in viewer.get("/account").text


def test_security_headers_on_console_pages(admin):
    resp = admin.get("/")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_static_assets_are_local(admin):
    page = admin.get("/").text
    assert "http://" not in page and "https://" not in page
    assert admin.get("/console/static/console.css").status_code == 200
    assert admin.get("/console/static/console.js").status_code == 200
