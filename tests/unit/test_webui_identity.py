"""The console's per-image identity switch and a version's capture warnings."""

from __future__ import annotations

import dataclasses

from test_webui_kit import add_image, audit_actions, slate
from test_webui_kit import admin as admin
from test_webui_kit import app as app
from test_webui_kit import tech as tech

from appliance.machines import identity


def test_identity_turned_off_and_on_from_the_image_page(app, admin, tech):
    add_image(app)
    page = admin.get("/images/win11").text
    assert "Identity after a restore" in page and "Turn identity off" in page
    assert "Turn identity off" not in tech.get("/images/win11").text  # admins change it
    resp = admin.post("/images/win11/identity", {"enabled": "0"}, follow_redirects=True)
    assert resp.status_code == 200 and "Turn identity on" in resp.text
    with app.app_context():
        assert identity.image_enabled(slate(app).db(), "win11") is False
    assert ("web:ada", "image.identity") in audit_actions(app)
    admin.post("/images/win11/identity", {"enabled": "1"})
    with app.app_context():
        assert identity.image_enabled(slate(app).db(), "win11") is True
    assert admin.post("/images/nosuch/identity", {"enabled": "0"}).status_code == 404


def test_capture_warning_shown_on_the_version(app, admin):
    m = add_image(app)
    warned = dataclasses.replace(m, warnings=("partition 2: this Windows was not generalized",))
    store = slate(app).store
    store.manifest_path(m.image, m.version).write_bytes(warned.to_json())
    page = admin.get("/images/win11").text
    assert "Warning: partition 2: this Windows was not generalized" in page


def test_identity_by_the_json_api(app, admin):
    add_image(app)
    r = admin.api("PATCH", "/api/v1/images/win11/policy", {"identity": False})
    assert r.status_code == 200 and r.get_json()["identity"] is False
    with app.app_context():
        assert identity.image_enabled(slate(app).db(), "win11") is False
    r = admin.api("PATCH", "/api/v1/images/win11/policy", {"keep_last": 2})
    assert r.get_json()["identity"] is False and r.get_json()["keep_last"] == 2  # unchanged
    r = admin.api("PATCH", "/api/v1/images/win11/policy", {"identity": True})
    assert r.get_json()["identity"] is True
