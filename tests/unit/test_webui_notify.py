"""The console's notification page (admin): add a webhook and an e-mail, send a test,
remove; bad input is a 400 with the reason, never a 500."""

from __future__ import annotations

from test_webui_kit import admin as admin
from test_webui_kit import app as app
from test_webui_kit import audit_actions, slate

from appliance.notify import outbox

ALL = {
    f"event-{e}": "on" for e in ("failed", "done", "room-done", "disk-refused", "forged-traffic")
}


def test_admin_adds_tests_and_removes_targets(app, admin) -> None:
    hook_form = {"url": "https://hooks.example/x", "secret": "s3cret", "event-failed": "on"}
    resp = admin.post("/admin/notify/webhook", hook_form)
    assert resp.status_code == 302
    resp = admin.post("/admin/notify/email", {"to": "tech@example.org", "smtp": "mail:587",
                      "user": "slate", "password": "pw", "starttls": "on", **ALL})  # fmt: skip
    assert resp.status_code == 302
    page = admin.get("/admin/notify").text
    assert "https://hooks.example/x" in page and "tech@example.org" in page
    assert "s3cret" not in page and "via mail:587 STARTTLS as slate" in page
    with app.app_context():
        hook, mail = outbox.targets(slate(app).db())
    assert hook.events == ("failed",) and mail.starttls
    assert admin.post(f"/admin/notify/{hook.id}/test").status_code == 302
    with app.app_context():
        (item,) = outbox.due(slate(app).db())
    assert item.target.id == hook.id
    assert admin.post(f"/admin/notify/{hook.id}/delete").status_code == 302
    with app.app_context():
        assert [t.id for t in outbox.targets(slate(app).db())] == [mail.id]
    assert ("web:ada", "notify.add-webhook") in audit_actions(app)
    assert ("web:ada", "notify.rm") in audit_actions(app)


def test_bad_input_is_a_400_with_the_reason(admin) -> None:
    resp = admin.post("/admin/notify/webhook", {"url": "ftp://x", "secret": "s", **ALL})
    assert resp.status_code == 400 and "is not an http(s) URL" in resp.text
    resp = admin.post("/admin/notify/webhook", {"url": "https://x/", "secret": "", **ALL})
    assert resp.status_code == 400 and "a webhook needs a secret" in resp.text
    resp = admin.post("/admin/notify/email", {"to": "tech@example.org", "smtp": "mailhost"})
    assert resp.status_code == 400 and "is not HOST:PORT" in resp.text
    assert admin.post("/admin/notify/99/delete").status_code == 404
