"""`slate job …` through the real CLI."""

from __future__ import annotations

import json

from http_kit import V1, V2, write_image

from appliance import db
from appliance.config import Layout
from appliance.machines import Inventory


def _setup(slate, home):
    # Hosts are added in-process: `slate host` has its own tests; these are about jobs.
    layout = Layout(home)
    write_image(layout, "win11", V1)
    write_image(layout, "win11", V2)
    inv = Inventory(db.connect(layout.db))
    inv.add_host("aa:bb:cc:00:00:01", "pc1", actor="t", room="lab1")
    inv.add_host("aa:bb:cc:00:00:02", "pc2", actor="t", room="lab1")


def test_restore_latest_and_pinned_version(slate, home):
    _setup(slate, home)
    jobs = json.loads(
        slate("job", "restore", "--host", "pc1", "--image", "win11", "--json", check=True).stdout
    )
    assert (jobs[0]["image"], jobs[0]["version"], jobs[0]["state"]) == ("win11", V2, "pending")
    jobs = json.loads(
        slate(
            "job", "restore", "--host", "pc2", "--image", f"win11@{V1}", "--json", check=True
        ).stdout
    )
    assert jobs[0]["version"] == V1
    listed = json.loads(slate("job", "list", "--json", check=True).stdout)
    assert {j["host_name"] for j in listed} == {"pc1", "pc2"}
    assert "token" not in json.dumps(listed).replace("token_", "")


def test_second_job_for_busy_host_refused(slate, home):
    _setup(slate, home)
    slate("job", "restore", "--host", "pc1", "--image", "win11", check=True)
    proc = slate("job", "restore", "--host", "pc1", "--image", "win11")
    assert proc.returncode == 1
    assert "already has an active restore job" in proc.stderr and "hint: " in proc.stderr
    # A room restore touching pc1 is refused whole: pc2 gets nothing either.
    proc = slate("job", "restore", "--room", "lab1", "--image", "win11")
    assert proc.returncode == 1
    assert len(json.loads(slate("job", "list", "--json").stdout)) == 1


def test_room_restore_at_time(slate, home):
    _setup(slate, home)
    out = json.loads(
        slate(
            "job",
            "restore",
            "--room",
            "lab1",
            "--image",
            "win11",
            "--at",
            "2030-01-01T10:00Z",
            "--after",
            "poweroff",
            "--json",
            check=True,
        ).stdout
    )
    assert len(out) == 2
    assert {j["not_before"] for j in out} == {"2030-01-01T10:00:00Z"}
    assert {j["options"]["after"] for j in out} == {"poweroff"}


def test_unknown_image_and_bad_time(slate, home):
    _setup(slate, home)
    proc = slate("job", "restore", "--host", "pc1", "--image", "nope")
    assert proc.returncode == 1 and "nope" in proc.stderr
    proc = slate("job", "restore", "--host", "pc1", "--image", "win11", "--at", "soon")
    assert proc.returncode == 1 and "is not a time" in proc.stderr


def test_show_cancel_retry(slate, home):
    _setup(slate, home)
    slate("job", "capture", "--host", "pc1", "--image", "newimg", "--note", "fresh", check=True)
    job = json.loads(slate("job", "list", "--json").stdout)[0]
    assert (job["action"], job["image"], job["version"]) == ("capture", "newimg", None)
    assert slate("job", "cancel", str(job["id"]), check=True).stdout.strip().endswith("cancelled")
    assert slate("job", "cancel", str(job["id"])).returncode == 1
    assert len(json.loads(slate("job", "list", "--all", "--json").stdout)) == 1
    shown = json.loads(slate("job", "show", str(job["id"]), "--json", check=True).stdout)
    assert shown["state"] == "cancelled" and shown["log"] == []
    assert "cancelled" in slate("job", "show", str(job["id"]), check=True).stdout
    retry = slate("job", "retry", str(job["id"]), check=True)
    assert "retry of job" in retry.stdout
    new = json.loads(slate("job", "list", "--json").stdout)[0]
    assert new["id"] != job["id"] and new["action"] == "capture" and new["image"] == "newimg"
    assert slate("job", "retry", str(new["id"])).returncode == 1
    assert slate("job", "show", "999").returncode == 1
