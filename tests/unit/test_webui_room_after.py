"""The room's "when done" in the console: set on the room page, the default of the
reimage confirmation's *When done*, and through the JSON API (PATCH /api/v1/rooms/NAME,
``after`` on POST /api/v1/jobs)."""

from __future__ import annotations

from test_webui_kit import MAC1, MAC2, MAC3, add_host, add_image, app, slate
from test_webui_kit import tech as tech
from test_webui_kit import viewer as viewer

__all__ = ["app"]


def _afters(app):
    with app.app_context():
        jobs = slate(app).jobs.list_jobs()
    return {j.host_name: (j.options["after"], j.options.get("after_room")) for j in jobs}


def _room_after(app, name="lab-a"):
    with app.app_context():
        return slate(app).inventory.get_room(name).after


def test_the_room_page_sets_when_done(app, tech):
    add_host(app, MAC1, "pc1")
    page = tech.get("/rooms/lab-a").text
    assert 'action="/rooms/lab-a/after"' in page
    assert '<option value="none" selected>no room setting (reboot, unless the job says)' in page
    resp = tech.post("/rooms/lab-a/after", {"after": "poweroff"})
    assert (resp.status_code, resp.headers["Location"]) == (302, "/rooms/lab-a")
    assert _room_after(app) == "poweroff"
    page = tech.get("/rooms/lab-a").text
    assert "Room lab-a, when a restore is done: shut down." in page
    assert '<option value="poweroff" selected>shut down</option>' in page
    tech.post("/rooms/lab-a/after", {"after": "none"})
    assert _room_after(app) is None


def test_a_bad_value_is_400_with_the_choices(app, tech):
    add_host(app, MAC1, "pc1")
    resp = tech.post("/rooms/lab-a/after", {"after": "sleep"})
    assert resp.status_code == 400
    assert "&#39;when done&#39; &#39;sleep&#39; is not known" in resp.text
    assert "or none (no room setting" in resp.text
    assert _room_after(app) is None


def test_a_viewer_sees_the_setting_without_the_form(app, viewer):
    add_host(app, MAC1, "pc1")
    with app.app_context():
        slate(app).inventory.set_room_after("lab-a", "poweroff", actor="t")
    page = viewer.get("/rooms/lab-a").text
    assert '<strong id="after">shut down</strong>' in page
    assert '<select id="after"' not in page


def test_the_reimage_confirmation_defaults_to_the_rooms_setting(app, tech):
    add_image(app)
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    add_host(app, MAC3, "pc3", room=None)
    with app.app_context():
        slate(app).inventory.set_room_after("lab-a", "poweroff", actor="t")
    page = tech.post("/reimage/confirm", {"image": "win11", "room": "lab-a"}).text
    assert '<option value="" selected>room lab-a&#39;s setting: shut down</option>' in page
    mixed = tech.post("/reimage/confirm", {"image": "win11", "mac": [MAC1, MAC3]}).text
    assert (
        '<option value="" selected>as each machine&#39;s room says (lab-a: shut down;'
        " reboot without a room)</option>"
    ) in mixed
    # Left at the default, the room's setting; chosen, the form's.
    resp = tech.post("/reimage/start", {"image": "win11", "room": "lab-a", "after": ""})
    assert resp.status_code == 302
    resp = tech.post("/reimage/start", {"image": "win11", "mac": MAC3, "after": "poweroff"})
    assert resp.status_code == 302
    assert _afters(app) == {
        "pc1": ("poweroff", "lab-a"),
        "pc2": ("poweroff", "lab-a"),
        "pc3": ("poweroff", None),
    }
    with app.app_context():
        pc1 = slate(app).jobs.active_for(MAC1)
    page = tech.get(f"/jobs/{pc1.id}").text
    assert (
        '<dd id="job-after">shut down <span class="small muted">(room lab-a\'s setting)</span></dd>'
    ) in page


def test_the_reimage_form_says_reboot_when_no_room_has_a_setting(app, tech):
    add_image(app)
    add_host(app, MAC1, "pc1")
    page = tech.post("/reimage/confirm", {"image": "win11", "room": "lab-a"}).text
    assert '<option value="" selected>reboot (into the restored system)</option>' in page
    resp = tech.post("/reimage/start", {"image": "win11", "room": "lab-a", "after": "halt"})
    assert resp.status_code == 400
    assert "&#39;when done&#39; &#39;halt&#39; is not known" in resp.text


def test_api_patch_room_and_start_with_after(app, tech):
    add_image(app)
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    resp = tech.api("PATCH", "/api/v1/rooms/lab-a", {"after": "poweroff"})
    assert (resp.status_code, resp.json) == (
        200,
        {"name": "lab-a", "note": "", "auto_restore": None, "hosts": 2, "after": "poweroff"},
    )
    assert tech.api("GET", "/api/v1/rooms").json[0]["after"] == "poweroff"
    resp = tech.api("PATCH", "/api/v1/rooms/lab-a", {"after": "hibernate"})
    assert resp.status_code == 400
    assert resp.json["error"] == "'when done' 'hibernate' is not known"
    resp = tech.api("PATCH", "/api/v1/rooms/lab-a", {"after": 3})
    assert resp.status_code == 400
    assert resp.json["error"] == "'after' must be a string or null, not 3"
    resp = tech.api("PATCH", "/api/v1/rooms/lab-a", {"note": "x"})
    assert resp.status_code == 400
    assert resp.json == {
        "error": "nothing to change: the body has no 'after'",
        "hint": 'send {"after": "reboot"}, {"after": "poweroff"} or {"after": null}',
    }
    start = {"action": "restore", "image": "win11"}
    resp = tech.api("POST", "/api/v1/jobs", {**start, "hosts": [MAC1]})
    assert resp.status_code == 201 and resp.json[0]["options"]["after"] == "poweroff"
    resp = tech.api("POST", "/api/v1/jobs", {**start, "hosts": [MAC2], "after": "reboot"})
    assert resp.status_code == 201 and resp.json[0]["options"]["after"] == "reboot"
    assert _afters(app) == {"pc1": ("poweroff", "lab-a"), "pc2": ("reboot", None)}
    resp = tech.api("POST", "/api/v1/jobs", {**start, "hosts": [MAC2], "after": "halt"})
    assert resp.status_code == 400
    assert resp.json["hint"] == (
        "reboot or poweroff, or leave it out for the room's setting (else reboot)"
    )
    resp = tech.api("PATCH", "/api/v1/rooms/lab-a", {"after": None})
    assert (resp.status_code, resp.json["after"]) == (200, None)
