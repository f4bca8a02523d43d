"""What the console's pages and API do: machines, Wake-on-LAN, reimage, jobs, images,
live events — against the real appliance app, database and image store."""

from __future__ import annotations

import json
import socket
import time

import pytest
from test_webui_kit import MAC1, MAC2, MAC3, add_host, add_image, app, audit_actions, slate
from test_webui_kit import admin as admin
from test_webui_kit import tech as tech
from test_webui_kit import viewer as viewer

from webui.wol import magic_packet

__all__ = ["app"]


def test_register_search_import_and_delete_machines(app, tech, admin):
    form = {"mac": "52-54-00-AA-BB-01", "name": "pc01", "room": "lab-b", "disk_hint": "serial=S1"}
    assert tech.post("/machines/add", form).status_code == 302
    csv = "mac,name,room\n52:54:00:aa:bb:02,pc02,lab-b\n52:54:00:aa:bb:03,pc03,lab-c\n"
    assert tech.post("/machines/import", {"csv": csv}).status_code == 302
    page = tech.get("/machines?q=lab-b").text
    assert "pc01" in page and "pc02" in page and "pc03" not in page
    assert "serial=S1" in page
    # A clash is reported, nothing half-imported.
    clash = {"csv": "52:54:00:aa:bb:04,pc04,x\n52:54:00:aa:bb:01,pc05,x\n"}
    resp = tech.post("/machines/import", clash)
    assert resp.status_code == 400 and "already registered" in resp.text
    # From the page (with a Referer) the error comes back as a message on the page.
    resp = tech.post("/machines/import", clash, headers={"Referer": "http://localhost/machines"})
    assert "already registered" in tech.get(resp.headers["Location"]).text
    with app.app_context():
        assert len(slate(app).inventory.hosts()) == 3
    assert admin.post("/machines/52:54:00:aa:bb:03/delete").status_code == 302
    actions = audit_actions(app)
    assert ("web:tom", "host.add") in actions and ("web:tom", "host.import") in actions
    assert ("web:ada", "host.rm") in actions


def test_edit_a_machine_from_the_page_and_the_api(app, tech, viewer):
    add_host(app, "52:54:00:aa:cc:01", "pc-old")
    form = {"name": "pc-new", "room": "lab-z", "ip": "10.0.0.21", "disk_hint": "size=512G"}
    resp = tech.post("/machines/52-54-00-AA-CC-01/edit", form)
    assert resp.status_code == 302
    with app.app_context():
        host = slate(app).inventory.get_host("52:54:00:aa:cc:01")
    assert (host.name, host.room, host.ip, host.disk_hint) == (
        "pc-new", "lab-z", "10.0.0.21", "size=512G",
    )  # fmt: skip
    page = tech.get("/machines").text
    assert 'value="pc-new"' in page and "lab-z" in page
    # The API: "" clears a field, a bad address is refused with a hint, viewers may not.
    resp = tech.api("PATCH", "/api/v1/hosts/pc-new", {"room": "", "ip": ""})
    assert resp.status_code == 200 and resp.json["room"] is None and resp.json["ip"] is None
    resp = tech.api("PATCH", "/api/v1/hosts/pc-new", {"ip": "10.0.0.999"})
    assert resp.status_code == 400 and "not an IPv4 address" in resp.json["error"]
    assert viewer.post("/machines/pc-new/edit", form).status_code == 403
    assert ("web:tom", "host.edit") in audit_actions(app)


def test_seen_machine_registered_in_one_click(app, tech):
    with app.app_context():
        slate(app).inventory.record_seen("52:54:00:00:00:77", firmware="uefi")
    page = tech.get("/").text
    assert "52:54:00:00:00:77" in page and "Seen booting, not registered" in page
    resp = tech.post("/machines/seen/52:54:00:00:00:77/register", {"name": "pc77", "room": "r1"})
    assert resp.status_code == 302
    with app.app_context():
        host = slate(app).inventory.get_host("pc77")
    assert host.room == "r1" and host.firmware == "uefi"
    assert "Seen booting, not registered" not in tech.get("/machines").text


@pytest.fixture
def udp_listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_wake_on_lan_sends_real_magic_packets(app, tech, udp_listener):
    app.config["SLATE_WOL_TARGET"] = f"127.0.0.1:{udp_listener.getsockname()[1]}"
    add_host(app, MAC1, "pc1", room="lab-a")
    add_host(app, MAC2, "pc2", room="lab-a")
    assert tech.post(f"/machines/{MAC1}/wake").status_code == 302
    packet = udp_listener.recv(200)
    assert packet == b"\xff" * 6 + bytes.fromhex("525400000001") * 16
    assert tech.post("/machines/rooms/lab-a/wake").status_code == 302
    got = {udp_listener.recv(200) for _ in range(2)}
    assert got == {magic_packet(MAC1), magic_packet(MAC2)}
    assert ("web:tom", "host.wake") in audit_actions(app)


def test_reimage_confirms_exactly_what_is_overwritten_then_starts(app, tech):
    image = add_image(app)
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    add_host(app, MAC3, "pc3", room="lab-z")
    choose = tech.get("/reimage").text
    ref = f"win11@{image.version}"
    assert ref in choose and "pc3" in choose
    form = {"image": ref, "mac": [MAC1, MAC2], "when": ""}
    confirm = tech.post("/reimage/confirm", form).text
    assert "Overwrite 2 machines" in confirm and "pc1" in confirm and "pc2" in confirm
    assert "pc3" not in confirm
    assert tech.post("/reimage/start", form).status_code == 302
    with app.app_context():
        jobs = slate(app).jobs.list_jobs()
    assert sorted(j.host_name for j in jobs) == ["pc1", "pc2"]
    assert all((j.image, j.version, j.state) == ("win11", image.version, "pending") for j in jobs)
    # pc1 is busy now: the confirmation says so and a start is refused as a whole.
    page = tech.post("/reimage/confirm", {"image": ref, "mac": [MAC1, MAC3]}).text
    assert "already have an unfinished job" in page and "disabled" in page
    tech.post("/reimage/start", {"image": ref, "mac": [MAC1, MAC3]})
    with app.app_context():
        assert len(slate(app).jobs.list_jobs()) == 2
    assert audit_actions(app).count(("web:tom", "job.restore")) == 2


def test_reimage_a_room_at_a_time(app, tech):
    add_image(app)
    add_host(app, MAC1, "pc1", room="lab-a")
    add_host(app, MAC2, "pc2", room="lab-a")
    form = {"image": "win11", "room": "lab-a", "when": "2030-01-01T08:00Z"}
    confirm = tech.post("/reimage/confirm", form).text
    assert "Overwrite 2 machines" in confirm and "2030-01-01T08:00:00Z" in confirm
    tech.post("/reimage/start", form)
    with app.app_context():
        jobs = slate(app).jobs.list_jobs()
    assert {j.not_before for j in jobs} == {"2030-01-01T08:00:00Z"} and len(jobs) == 2


def test_capture_job_from_the_console(app, tech):
    add_host(app, MAC1, "pc1")
    resp = tech.post("/reimage/capture", {"mac": MAC1, "image": "lab-master", "note": "v2"})
    assert resp.status_code == 302
    with app.app_context():
        (job,) = slate(app).jobs.list_jobs()
    assert (job.action, job.image, job.options.get("note")) == ("capture", "lab-master", "v2")


def _job(app, host="pc1"):
    add_image(app)
    add_host(app, MAC1, host)
    with app.app_context():
        return slate(app).jobs.restore(host, "win11", actor="test")


def test_job_page_shows_progress_log_and_failure_reason(app, viewer):
    job = _job(app)
    with app.app_context():
        jobs = slate(app).jobs
        jobs.transition(job.id, "running")
        jobs.progress(job.id, phase="writing", done=50, total=200, rate=1048576, eta=90)
        jobs.log(job.id, ["found disk vda (serial SER123)", "writing 4 chunks"])
    page = viewer.get(f"/jobs/{job.id}").text
    assert 'value="25"' in page and "writing" in page and "1.0 MiB/s" in page
    assert "found disk vda (serial SER123)" in page and "1m30s" in page
    with app.app_context():
        slate(app).jobs.failed(job.id, "disk vda is smaller than the image")
    history = viewer.get("/jobs").text
    assert "failed" in history and "disk vda is smaller than the image" in history
    assert "Cancel job" not in viewer.get(f"/jobs/{job.id}").text  # viewers see no buttons


def test_cancel_and_retry(app, tech):
    job = _job(app)
    assert tech.post(f"/jobs/{job.id}/cancel").status_code == 302
    with app.app_context():
        assert slate(app).jobs.get(job.id).state == "cancelled"
    resp = tech.post(f"/jobs/{job.id}/retry")
    assert resp.status_code == 302
    with app.app_context():
        new = slate(app).jobs.active_for(MAC1)
    assert new is not None and new.id != job.id and resp.headers["Location"] == f"/jobs/{new.id}"
    actions = audit_actions(app)
    assert ("web:tom", "job.cancel") in actions and ("web:tom", "job.retry") in actions


def test_images_page_sizes_partitions_and_sharing(app, viewer):
    first = add_image(app, "win11", seeds=(1, 2, 3))
    second = add_image(app, "win11-b", seeds=(1, 2, 9))
    page = viewer.get("/images").text
    assert first.version in page and second.version in page and "fresh install" in page
    detail = viewer.get("/images/win11").text
    assert "2 of 3 chunks" in detail and "ext4" in detail and "pc-ref" in detail
    data = viewer.get("/api/v1/images/win11").json
    (v,) = data["versions"]
    assert (v["chunks"], v["shared_chunks"]) == (3, 2) and v["logical_size"] == 4 * 64 * 1024
    assert v["stored_size"] > 0 and v["disks"][0]["partitions"][0]["fs"] == "ext4"


def test_delete_version_refused_while_a_job_uses_it(app, admin):
    job = _job(app)
    version = slate(app).store.resolve("win11").version
    resp = admin.api("DELETE", f"/api/v1/images/win11/{version}")
    assert resp.status_code == 409 and "unfinished job" in resp.json["error"]
    with app.app_context():
        slate(app).jobs.cancel(job.id, actor="test")
    assert admin.post(f"/images/win11/{version}/delete").status_code == 302
    assert slate(app).store.images() == []
    assert ("web:ada", "image.rm") in audit_actions(app)


def _verified(console, url):
    """Poll the verification status until it is no longer running (bounded)."""
    for _ in range(600):
        status = console.get(url).json
        if status["state"] != "running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"verification still running: {status}")


def test_verify_runs_in_background_and_finds_a_damaged_chunk(app, admin, viewer):
    image = add_image(app)
    url = f"/api/v1/images/win11/{image.version}/verify"
    assert viewer.get(url).json == {"state": "never"}
    started = admin.api("POST", url)
    assert started.status_code == 202 and started.json["state"] in ("running", "ok")
    ok = _verified(viewer, url)
    assert (ok["state"], ok["chunks"], ok["damaged"]) == ("ok", 3, [])
    assert "all 3 chunks good" in viewer.get("/images/win11").text
    digest = image.disks[0].chunks[0].digest
    from appliance.formats.chunkio import compress_chunk

    slate(app).store.chunk_path(digest).write_bytes(compress_chunk(b"\x07" * 64 * 1024))
    assert admin.post(f"/images/win11/{image.version}/verify").status_code == 302
    bad = _verified(viewer, url)
    assert bad["state"] == "damaged" and bad["damaged"] == [digest]
    assert "1 damaged chunk(s)" in viewer.get("/images/win11").text
    assert ("web:ada", "image.verify") in audit_actions(app)


def test_api_start_restore_preview_and_capture(app, home):
    from appliance import db, users

    add_image(app)
    add_host(app, MAC1, "pc1", room="lab-a")
    token = users.new_token(db.connect(home / "slate.db"), "tom", "test")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    rows = client.post("/api/v1/reimage/preview", json={"room": "lab-a"}, headers=auth).json
    assert [r["name"] for r in rows] == ["pc1"]
    resp = client.post(
        "/api/v1/jobs", json={"action": "restore", "image": "win11", "hosts": [MAC1]}, headers=auth
    )
    assert resp.status_code == 201 and resp.json[0]["state"] == "pending"
    assert resp.json[0]["created_by"] is not None
    again = client.post(
        "/api/v1/jobs", json={"action": "restore", "image": "win11", "hosts": [MAC1]}, headers=auth
    )
    assert again.status_code == 409 and again.json["hint"]
    bad = client.post("/api/v1/jobs", json={"action": "wipe", "image": "x"}, headers=auth)
    assert bad.status_code == 400
    assert ("api:tom", "job.restore") in audit_actions(app)


def _events(client, url):
    resp = client.get(url, buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    stream = iter(resp.response)
    try:
        while True:
            text = next(stream)
            text = text.decode() if isinstance(text, bytes) else text
            if text.startswith("event:"):
                kind, data = text.split("\n")[:2]
                yield kind[len("event: ") :], json.loads(data[len("data: ") :])
    finally:
        resp.close()


def test_live_events_follow_progress(app, viewer):
    job = _job(app)
    events = _events(viewer.client, "/api/v1/events")
    kind, data = next(events)
    assert kind == "jobs" and [j["id"] for j in data["active"]] == [job.id]
    with app.app_context():
        slate(app).jobs.transition(job.id, "running")
        slate(app).jobs.progress(job.id, phase="writing", done=3, total=4, rate=10.0, eta=1.0)
    kind, data = next(events)
    assert data["active"][0]["percent"] == 75.0 and data["active"][0]["phase"] == "writing"
    events.close()
    one = _events(viewer.client, f"/api/v1/events?job={job.id}")
    with app.app_context():
        slate(app).jobs.log(job.id, ["hello from the client"])
    kind, data = next(one)
    assert kind == "job" and data["job"]["id"] == job.id
    assert data["log"][-1]["line"] == "hello from the client"
    one.close()


def test_wol_target_setting_order(monkeypatch):
    from types import SimpleNamespace

    from webui.wol import target

    monkeypatch.delenv("SLATE_WOL_TARGET", raising=False)
    served = SimpleNamespace(interface="lo", wol_target="")
    assert target({"SLATE_WOL_TARGET": "10.9.0.255:7"}, served) == ("10.9.0.255", 7)
    monkeypatch.setenv("SLATE_WOL_TARGET", "10.8.0.255")
    assert target({}, served) == ("10.8.0.255", 9)
    monkeypatch.delenv("SLATE_WOL_TARGET")
    # Without a setting: the broadcast address of the served interface (lo: 127/8).
    assert target({}, served) == ("127.255.255.255", 9)
    assert target({}, None) == ("255.255.255.255", 9)


def test_note_edit_through_api_and_page(app, admin):
    image = add_image(app)
    resp = admin.api("PATCH", f"/api/v1/images/win11/{image.version}", {"note": "new term"})
    assert resp.status_code == 200
    assert slate(app).store.resolve("win11").note == "new term"
    assert "Save note" in admin.get("/images/win11").text
    resp = admin.api("PATCH", f"/api/v1/images/win11/{image.version}", {"note": "a\nb"})
    assert resp.status_code == 400 and "one line" in resp.json["error"]
