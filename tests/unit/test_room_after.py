"""A room's standing "when done" (issue 14, Power): `slate room set-after ROOM
reboot|poweroff|none`, taken by every restore job of the room's machines that does not
choose for itself (a room start, one machine, a standing rule, a schedule), and given to
the client in its job's options."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from http_kit import V1, bearer, write_image

from appliance.audit import recent
from appliance.backups.schedules import Schedules
from appliance.config import Layout
from appliance.errors import UsageError
from appliance.http import create_app
from appliance.settings import Settings

MAC1, MAC2, MAC3 = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:03"


def make(home):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    app = create_app(layout, Settings(unknown="silent"), plugins=False)
    facade = app.extensions["slate"]
    inv = facade.inventory
    inv.add_room("lab1", actor="t")
    inv.add_host(MAC1, "pc1", actor="t", room="lab1")
    inv.add_host(MAC2, "pc2", actor="t", room="lab1")
    inv.add_host(MAC3, "pc3", actor="t")  # in no room
    return app.test_client(), facade


def afters(jobs):
    return {j.host_name: (j.options["after"], j.options.get("after_room")) for j in jobs}


def test_a_rooms_setting_is_taken_by_its_restores_that_do_not_choose(home):
    client, facade = make(home)
    inv, jobs = facade.inventory, facade.jobs
    room = inv.set_room_after("lab1", "poweroff", actor="cli:tom")
    assert room.to_dict() == {
        "name": "lab1", "note": "", "auto_restore": None, "hosts": 2, "after": "poweroff"
    }  # fmt: skip
    assert recent(facade.db(), 1)[0]["action"] == "room.after"
    started = jobs.restore_room("lab1", "win11", actor="t")
    assert afters(started) == {"pc1": ("poweroff", "lab1"), "pc2": ("poweroff", "lab1")}
    # The client gets it with its job, and does it when done (bootimage/client/main.py).
    token = jobs.token(started[0].id)
    body = client.get("/api/client/v1/job", headers=bearer(token)).get_json()
    assert body["options"]["after"] == "poweroff"
    for j in started:
        jobs.cancel(j.id, actor="t")
    # A job's own choice wins; a machine in no room reboots; a capture is not a restore.
    own = jobs.restore("pc1", "win11", actor="t", options={"after": "reboot"})
    alone = jobs.restore("pc3", "win11", actor="t")
    capture = jobs.capture("pc2", "win12", actor="t")
    assert afters([own, alone]) == {"pc1": ("reboot", None), "pc3": ("reboot", None)}
    assert capture.options["after"] == "reboot" and "after_room" not in capture.options


def test_none_removes_the_setting_and_jobs_reboot_again(home):
    _, facade = make(home)
    inv, jobs = facade.inventory, facade.jobs
    inv.set_room_after("lab1", "poweroff", actor="t")
    assert inv.set_room_after("lab1", "none", actor="t").after is None
    assert inv.room_after_for(inv.get_host("pc1")) is None
    (job, _) = jobs.restore_room("lab1", "win11", actor="t")
    assert (job.options["after"], job.options.get("after_room")) == ("reboot", None)


def test_a_standing_rule_and_a_schedule_take_the_rooms_setting(home):
    client, facade = make(home)
    inv, jobs = facade.inventory, facade.jobs
    inv.set_room_after("lab1", "poweroff", actor="t")
    inv.set_room_auto_restore("lab1", "win11", actor="t")
    assert "kernel" in client.get(f"/boot/{MAC1}.ipxe").get_data(as_text=True)
    (ruled,) = jobs.list_jobs()
    assert afters([ruled]) == {"pc1": ("poweroff", "lab1")}
    sched = Schedules(jobs.conn, jobs.layout)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    sched.add(action="restore", image="win11", every="daily 02:00", host="pc2", actor="t", now=now)
    ((_, _, ids),) = sched.run_once(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tz=UTC)
    assert afters([jobs.get(i) for i in ids]) == {"pc2": ("poweroff", "lab1")}


def test_an_unknown_setting_is_refused_with_the_choices(home):
    _, facade = make(home)
    with pytest.raises(UsageError) as err:
        facade.inventory.set_room_after("lab1", "sleep", actor="t")
    assert err.value.message == "'when done' 'sleep' is not known"
    assert err.value.hint == (
        "reboot (into the restored system), poweroff (shut down), or none (no room setting:"
        " each job reboots unless started with --after poweroff)"
    )
    assert facade.inventory.get_room("lab1").after is None


def test_cli_set_after_list_restore_and_show(slate, home):
    make(home)
    out = slate("room", "set-after", "lab1", "poweroff", check=True).stdout
    assert out == (
        "room lab1: its machines power off when a restore is done"
        " (a job started with --after does as it says)\n"
    )
    got = json.loads(slate("room", "set-after", "lab1", "poweroff", "--json", check=True).stdout)
    assert got == {"name": "lab1", "note": "", "auto_restore": None, "hosts": 2,
                   "after": "poweroff"}  # fmt: skip
    listed = slate("room", "list", check=True).stdout.splitlines()
    assert listed[0].split() == ["NAME", "HOSTS", "AUTO-RESTORE", "WHEN", "DONE", "NOTE"]
    assert listed[2].split() == ["lab1", "2", "poweroff"]
    (job,) = json.loads(
        slate("job", "restore", "--host", "pc1", "--image", "win11", "--json", check=True).stdout
    )
    assert (job["options"]["after"], job["options"]["after_room"]) == ("poweroff", "lab1")
    shown = slate("job", "show", str(job["id"]), check=True).stdout
    assert "when done:   poweroff (room lab1's setting)\n" in shown
    argv = ["job", "restore", "--host", "pc2", "--image", "win11", "--after", "reboot", "--json"]
    (own,) = json.loads(slate(*argv, check=True).stdout)
    assert (own["options"]["after"], own["options"].get("after_room")) == ("reboot", None)
    assert "when done:   reboot\n" in slate("job", "show", str(own["id"]), check=True).stdout
    out = slate("room", "set-after", "lab1", "none", check=True).stdout
    assert out == (
        "room lab1: no 'when done' setting; restore jobs reboot unless started with"
        " --after poweroff\n"
    )


def test_cli_bad_setting_and_unknown_room_say_what_to_do(slate, home):
    make(home)
    proc = slate("room", "set-after", "lab1", "hibernate")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "slate: error: 'when done' 'hibernate' is not known",
        "hint: reboot (into the restored system), poweroff (shut down), or none (no room"
        " setting: each job reboots unless started with --after poweroff)",
    ]
    proc = slate("room", "set-after", "nope", "poweroff")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "slate: error: no room named 'nope'",
        "hint: see `slate room list`",
    ]
