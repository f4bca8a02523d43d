"""The console's backups: promotion buttons (technician), retention shown with what it
would remove, schedules page and API."""

from __future__ import annotations

import time

from test_webui_kit import MAC1, add_host, add_image, audit_actions, slate
from test_webui_kit import admin as admin
from test_webui_kit import app as app
from test_webui_kit import tech as tech
from test_webui_kit import viewer as viewer

from appliance.store import policy as policies


def _candidate(app):
    """A second version, then unpromoted: as a capture leaves it."""
    time.sleep(1.01)  # another second: another version id
    m = add_image(app, seeds=(4, 5, 6))
    slate(app).store.set_mark(m.image, m.version, "candidate", True)
    return m


def test_promote_from_the_image_page(app, tech, viewer):
    first = add_image(app)
    cand = _candidate(app)
    page = tech.get("/images/win11").text
    assert "candidate" in page and f"/images/win11/{cand.version}/promote" in page
    assert "Promotion and retention" in page and "keep every version" in page
    assert f"/images/win11/{first.version}/unpromote" in page
    # A viewer sees the status, not the buttons, and may not promote.
    assert "/promote" not in viewer.get("/images/win11").text
    assert viewer.post(f"/images/win11/{cand.version}/promote").status_code == 403
    resp = tech.post(f"/images/win11/{cand.version}/promote", follow_redirects=True)
    assert resp.status_code == 200 and "promoted" in resp.text
    assert slate(app).store.is_promoted("win11", cand.version)
    assert ("web:tom", "image.promote") in audit_actions(app)
    with app.app_context():
        add_host(app, MAC1, "pc1")
        assert slate(app).jobs.restore("pc1", "win11", actor="t").version == cand.version
    # Technicians may not change retention; admins may.
    assert tech.post("/images/win11/policy", {"keep_last": "1"}).status_code == 403


def test_retention_shows_what_would_go(app, admin):
    first = add_image(app)
    second = _candidate(app)
    resp = admin.post("/images/win11/policy", {"keep_last": "1", "keep_daily": ""},
                      follow_redirects=True)  # fmt: skip
    assert resp.status_code == 200
    with app.app_context():
        pol = policies.get(slate(app).db(), "win11")
    assert (pol.keep_last, pol.keep_daily, pol.auto_promote) == (1, None, False)
    page = admin.get("/images/win11").text
    # The first version is the newest promoted one: kept; nothing would go yet.
    assert "would remove nothing" in page and "newest promoted version" in page
    admin.post(f"/images/win11/{second.version}/promote")
    page = admin.get("/images/win11").text
    assert "would remove <strong>1</strong>" in page and first.version in page
    api = admin.api("GET", "/api/v1/images/win11/backups").json
    assert api["retention"]["remove"] == [first.version]
    assert [h["shared_chunks"] for h in api["history"]] == [0, 0]
    admin.post("/images/win11/prune")
    assert slate(app).store.version_ids("win11") == [second.version]


def test_schedules_page_and_api(app, tech, viewer):
    add_image(app)
    add_host(app, MAC1, "pc1")
    resp = tech.post("/schedules/add", {"action": "capture", "target": f"host:{MAC1}",
                                        "image": "win11", "every": "daily 02:00", "wake": "1"},
                     follow_redirects=True)  # fmt: skip
    assert resp.status_code == 200 and "Schedule 1 added" in resp.text
    assert "daily 02:00 + Wake-on-LAN" in viewer.get("/schedules").text
    assert viewer.post("/schedules/1/pause").status_code == 403
    tech.post("/schedules/1/pause")
    (s,) = viewer.api("GET", "/api/v1/schedules").json
    assert (s["paused"], s["target"], s["next_run"]) == (True, "host pc1", None)
    room = {"room": "lab-a", "every": "daily 02:00"}
    bad = tech.api("POST", "/api/v1/schedules", {"action": "capture", "image": "win11", **room})
    assert bad.status_code == 400 and "one machine" in bad.json["error"]
    made = tech.api(
        "POST", "/api/v1/schedules", {"action": "restore", "image": "win11@-1d", **room}
    )
    assert made.status_code == 201 and made.json["target"] == "room lab-a"
    assert tech.api("POST", "/api/v1/schedules/1/resume").json["paused"] is False
    assert tech.api("DELETE", f"/api/v1/schedules/{made.json['id']}").status_code == 200
    assert ("web:tom", "schedule.add") in audit_actions(app)


def test_reimage_as_of_a_date(app, tech):
    first = add_image(app)
    add_host(app, MAC1, "pc1")
    form = {"image": f"win11@{first.version}", "asof": "2000-01-01", "mac": MAC1}
    assert tech.post("/reimage/confirm", form).status_code == 404  # nothing that old
    page = tech.post("/reimage/confirm", {**form, "asof": "-0d"}).text
    assert f"win11@{first.version}" in page
