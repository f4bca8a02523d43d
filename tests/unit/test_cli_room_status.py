"""`slate room status ROOM [--json]` through the real CLI (issue 14, room view): every
seat with its job, state, phase, progress, rate and ETA, and the room's totals."""

from __future__ import annotations

import json

from http_kit import V1, write_image

from appliance import db
from appliance.config import Layout
from appliance.jobs import Jobs

MIB = 2**20


def _room(home):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    jobs = Jobs(db.connect(layout.db), layout)
    inv = jobs.inventory
    for n in range(1, 6):
        inv.add_host(f"aa:bb:cc:00:00:0{n}", f"pc{n}", actor="t", room="lab1")
    j1, j2, j3, j4 = (jobs.restore(f"pc{n}", "win11", actor="t") for n in range(1, 5))
    jobs.transition(j1.id, "running")
    jobs.progress(j1.id, phase="writing", done=300 * MIB, total=1000 * MIB, rate=50 * MIB, eta=14)
    jobs.transition(j2.id, "running")
    jobs.done(j2.id, verified_bytes=1000 * MIB)
    jobs.transition(j3.id, "running")
    jobs.transition(j3.id, "failed", reason="chunk 311 did not verify")
    return (j1.id, j2.id, j3.id, j4.id)


def test_status_table_and_totals(slate, home):
    j1, j2, j3, j4 = _room(home)
    lines = slate("room", "status", "lab1", check=True).stdout.splitlines()
    assert lines[0].split() == ["HOST", "JOB", "STATE", "PHASE", "DONE", "RATE", "ETA", "ROOMCAST"]
    assert [line.split() for line in lines[2:7]] == [
        ["pc1", str(j1), "running", "writing", "30%", "50.0", "MiB/s", "14", "s"],
        ["pc2", str(j2), "done"],
        ["pc3", str(j3), "failed"],
        ["pc4", str(j4), "pending"],
        ["pc5", "no", "job"],
    ]
    assert lines[7] == "1 done, 1 running, 1 failed, 1 not yet booted, 1 without a job"
    assert len(lines) == 8  # no roomcast session serves this room


def test_status_json(slate, home):
    j1, _j2, _j3, _j4 = _room(home)
    got = json.loads(slate("room", "status", "lab1", "--json", check=True).stdout)
    assert got["room"] == "lab1" and got["sessions"] == []
    assert got["totals"] == {"done": 1, "running": 1, "failed": 1, "waiting": 1, "idle": 1}
    seats = {s["host"]: s for s in got["seats"]}
    assert seats["pc1"] == {
        "host": "pc1",
        "mac": "aa:bb:cc:00:00:01",
        "job": j1,
        "action": "restore",
        "image": f"win11@{V1}",
        "state": "running",
        "phase": "writing",
        "percent": 30.0,
        "rate": 50.0 * MIB,
        "eta": 14.0,
        "reason": "",
        "roomcast": None,
    }
    assert (seats["pc3"]["state"], seats["pc3"]["reason"]) == ("failed", "chunk 311 did not verify")
    assert seats["pc5"]["job"] is None and seats["pc5"]["state"] is None


def test_an_unknown_room_says_where_to_look(slate, home):
    proc = slate("room", "status", "nope")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "slate: error: no room named 'nope'",
        "hint: see `slate room list`",
    ]
