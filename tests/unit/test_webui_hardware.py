"""The console's side of issue 14: a machine's hardware page (facts, disk health, power),
the search box over hardware facts, and the reimage/capture forms' "when done" and
"ignore disk health" choices."""

from __future__ import annotations

from test_webui_kit import MAC1, MAC2, add_host, add_image, app, slate
from test_webui_kit import tech as tech
from test_webui_kit import viewer as viewer

from appliance.machines import diskhealth
from appliance.machines import facts as machine_facts
from appliance.machines import power as machine_power

__all__ = ["app"]
UUID = "5f1c0e2a-7b3d-4c8e-9a10-2233445566aa"
FACTS = {
    "system_vendor": "LENOVO",
    "system_product": "ThinkCentre M720q",
    "system_serial": "MJ0ABCDE",
    "system_uuid": UUID,
    "board_serial": "L1HF91234",
    "cpu": {"model": "Intel(R) Core(TM) i5-8500T", "threads": 6},
    "memory_bytes": 8 * 2**30,
    "disks": [{"path": "/dev/sda", "model": "WDC WDS256G", "serial": "WD-123", "size": 256e9}],
    "nics": [{"name": "enp0s31f6", "mac": MAC1, "driver": "e1000e", "speed_mbit": 1000}],
}


def _reported(app) -> int:
    with app.app_context():
        a = slate(app)
        job = a.jobs.create("register", "pc1", actor="t")
        a.jobs.transition(job.id, "running")
        machine_facts.record_facts(a.db(), a.jobs.get(job.id), FACTS)
        verdict = diskhealth.judge(
            {"path": "/dev/sda", "kind": "ata", "passed": True, "reallocated": 3, "pending": 0}
        )
        machine_facts.record_health(a.db(), job.id, [verdict], ignored=False)
        a.jobs.done(job.id)
        return job.id


def test_hardware_page_shows_the_facts_and_the_disk_health(app, viewer):
    add_host(app, MAC1, "pc1")
    page = viewer.get(f"/machines/{MAC1}/hardware").text
    assert "No hardware facts yet" in page and "Not waiting in Slate's boot environment" in page
    _reported(app)
    page = viewer.get(f"/machines/{MAC1}/hardware").text
    assert 'id="fact-serial">MJ0ABCDE<' in page and f'id="fact-uuid">{UUID}<' in page
    assert "ThinkCentre M720q" in page and "i5-8500T" in page and "e1000e" in page
    assert "WD-123" in page and 'class="health-ok"' in page and "ata PASSED" in page
    assert 'id="power-reboot"' not in page  # a viewer, and nothing waiting
    machines = viewer.get("/machines").text
    assert f'href="/machines/{MAC1}/hardware"' in machines


def test_the_search_box_finds_machines_by_their_hardware(app, viewer):
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    _reported(app)
    for needle in ("mj0abcde", UUID[:13], "thinkcentre", "WD-123"):
        page = viewer.get(f"/machines?q={needle}").text
        assert f"{MAC1}" in page and f"{MAC2}" not in page, needle


def test_power_buttons_reach_a_machine_waiting_in_the_boot_environment(app, tech):
    add_host(app, MAC1, "pc1")
    job = _reported(app)
    refused = tech.post(f"/machines/{MAC1}/power", {"command": "poweroff"})
    assert refused.status_code == 409 and "not waiting" in refused.text
    with app.app_context():
        assert machine_power.note_poll(slate(app).db(), job) is None  # the client polls
    page = tech.get(f"/machines/{MAC1}/hardware").text
    assert 'id="power-waiting"' in page and 'id="power-off"' in page
    resp = tech.post(f"/machines/{MAC1}/power", {"command": "poweroff"})
    assert resp.status_code == 302
    assert tech.post(f"/machines/{MAC1}/power", {"command": "explode"}).status_code == 400
    with app.app_context():
        assert machine_power.note_poll(slate(app).db(), job) == "poweroff"
    assert "Last request: poweroff by web:tom" in tech.get(f"/machines/{MAC1}/hardware").text


def test_register_button_creates_a_register_job(app, tech):
    add_host(app, MAC2, "pc2")
    assert tech.post(f"/machines/{MAC2}/register").status_code == 302
    with app.app_context():
        job = slate(app).jobs.active_for(MAC2)
    assert job is not None and job.action == "register" and job.options["after"] == "reboot"


def test_reimage_and_capture_take_when_done_and_ignore_disk_health(app, tech):
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2", room="lab-b")
    image = add_image(app)
    confirm = tech.post("/reimage/confirm", {"image": image.ref, "mac": MAC1}).text
    assert 'name="after"' in confirm and 'name="ignore_disk_health"' in confirm
    form = {"image": image.ref, "room": "lab-a", "after": "poweroff", "ignore_disk_health": "1"}
    assert tech.post("/reimage/start", form).status_code == 302
    form = {"image": image.ref, "mac": MAC2, "after": "sideways"}
    bad = tech.post("/reimage/start", form)
    assert bad.status_code == 400 and "reboot or poweroff" in bad.text
    with app.app_context():
        job = slate(app).jobs.active_for(MAC1)
    assert job is not None
    assert job.options["after"] == "poweroff" and job.options["ignore_disk_health"] is True
    assert 'name="ignore_disk_health"' in tech.get("/reimage/capture").text
    form = {"mac": MAC2, "image": "new", "ignore_disk_health": "1"}
    assert tech.post("/reimage/capture", form).status_code == 302
    with app.app_context():
        cap = slate(app).jobs.active_for(MAC2)
    assert cap is not None and cap.options["ignore_disk_health"] is True


def test_room_power_off_button(app, tech):
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    job = _reported(app)
    assert 'action="/machines/rooms/lab-a/power"' in tech.get("/machines").text
    assert tech.post("/machines/rooms/lab-a/power", {"command": "poweroff"}).status_code == 409
    with app.app_context():
        machine_power.note_poll(slate(app).db(), job)
    resp = tech.post("/machines/rooms/lab-a/power", {"command": "poweroff"})
    assert resp.status_code == 302
    with app.app_context():
        assert machine_power.note_poll(slate(app).db(), job) == "poweroff"
