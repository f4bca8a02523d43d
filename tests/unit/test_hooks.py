"""Post-restore hooks and kept-partition rules on the appliance (appliance.hooks, the CLI,
the client API's /after): validation with reasons, audit, order image → room → host, and a
job's token reaching only that job's hooks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from http_kit import V1, bearer, write_image

from appliance import audit, hooks
from appliance.cli import main as cli
from appliance.config import Layout
from appliance.errors import Conflict, NotFound, UsageError
from appliance.http import create_app

SH = b"#!/bin/sh\necho hi\n"


@pytest.fixture
def world(home: Path):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    write_image(layout, "ubuntu", V1)
    app = create_app(layout, plugins=False)
    f = app.extensions["slate"]
    f.inventory.add_room("r1", actor="t")
    f.inventory.add_host("aa:bb:cc:00:00:01", "pc1", actor="t", room="r1")
    f.inventory.add_host("aa:bb:cc:00:00:02", "pc2", actor="t")
    return app, f


def after(app, f, host: str, image: str) -> dict:
    job = f.jobs.restore(host, image, actor="t")
    r = app.test_client().get("/api/client/v1/after", headers=bearer(f.jobs.token(job.id)))
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def test_a_job_gets_its_own_hooks_in_order_image_room_host(world) -> None:
    app, f = world
    conn = f.db()
    hooks.add_hook(conn, "host", "pc1", "40-host.sh", b"#!/bin/sh\nhost\n", actor="t")
    hooks.add_hook(conn, "room", "r1", "30-room.sh", SH, actor="t")
    hooks.add_hook(conn, "image", "win11", "20-b.sh", SH, timeout=9, actor="t")
    hooks.add_hook(conn, "image", "win11", "10-a.sh", SH, actor="t")
    hooks.add_hook(conn, "image", "ubuntu", "99-ubuntu.sh", SH, actor="t")
    hooks.add_hook(conn, "host", "pc2", "50-pc2.sh", SH, actor="t")
    hooks.add_keep(conn, "image", "win11", 2, actor="t")
    hooks.add_keep(conn, "room", "r1", 3, actor="t")
    hooks.add_keep(conn, "image", "ubuntu", 1, actor="t")
    got = after(app, f, "pc1", "win11")
    assert [(h["name"], h["scope"], h["target"], h["timeout"]) for h in got["hooks"]] == [
        ("20-b.sh", "image", "win11", 9),  # image hooks in the order they were added
        ("10-a.sh", "image", "win11", 300),
        ("30-room.sh", "room", "r1", 300),
        ("40-host.sh", "host", "aa:bb:cc:00:00:01", 300),
    ]
    assert base64.b64decode(got["hooks"][3]["script_b64"]) == b"#!/bin/sh\nhost\n"
    assert got["keep"] == [2, 3] and got["room"] == "r1"
    other = after(app, f, "pc2", "ubuntu")
    assert [h["name"] for h in other["hooks"]] == ["99-ubuntu.sh", "50-pc2.sh"]
    assert other["keep"] == [1] and other["room"] == ""


def test_a_capture_job_has_no_hooks(world) -> None:
    app, f = world
    job = f.jobs.capture("pc2", "win11", actor="t")
    r = app.test_client().get("/api/client/v1/after", headers=bearer(f.jobs.token(job.id)))
    assert r.status_code == 403
    assert "only a restore has hooks" in r.get_json()["error"]


@pytest.mark.parametrize(
    ("scope", "target", "name", "script", "error", "says"),
    [
        ("image", "win11", "../x", SH, UsageError, "not a usable hook name"),
        ("image", "win11", "a.sh", b"  \n", UsageError, "is empty"),
        ("image", "win11", "a.sh", b"echo no interpreter\n", UsageError, "does not start with"),
        ("image", "win11", "a.sh", b"#!" + b"x" * 300_000, UsageError, "at most"),
        ("image", "no/such", "a.sh", SH, UsageError, "not a valid image name"),
        ("room", "r9", "a.sh", SH, NotFound, "no room named 'r9'"),
        ("host", "pc9", "a.sh", SH, NotFound, "pc9"),
        ("disk", "x", "a.sh", SH, UsageError, "unknown scope"),
    ],
)
def test_bad_hooks_are_refused_with_a_reason(world, scope, target, name, script, error, says):
    _, f = world
    with pytest.raises(error) as exc:
        hooks.add_hook(f.db(), scope, target, name, script, actor="t")
    assert says in exc.value.message
    assert hooks.hooks(f.db()) == []


def test_duplicates_timeouts_and_keep_rules_are_checked(world) -> None:
    _, f = world
    conn = f.db()
    hooks.add_hook(conn, "image", "win11", "a.sh", SH, actor="t")
    with pytest.raises(Conflict, match=r"already has a hook named a\.sh"):
        hooks.add_hook(conn, "image", "win11", "a.sh", SH, actor="t")
    with pytest.raises(UsageError, match="out of range"):
        hooks.add_hook(conn, "image", "win11", "b.sh", SH, timeout=0, actor="t")
    with pytest.raises(UsageError, match="per image or room, not per host"):
        hooks.add_keep(conn, "host", "pc1", 2, actor="t")
    with pytest.raises(UsageError, match="out of range"):
        hooks.add_keep(conn, "image", "win11", 0, actor="t")
    hooks.add_keep(conn, "image", "win11", 2, actor="t")
    with pytest.raises(Conflict, match="already keeps partition 2"):
        hooks.add_keep(conn, "image", "win11", 2, actor="t")
    with pytest.raises(NotFound, match="no hook 99"):
        hooks.remove_hook(conn, 99, actor="t")


def test_changes_are_audited(world) -> None:
    _, f = world
    conn = f.db()
    hook = hooks.add_hook(conn, "room", "r1", "a.sh", SH, actor="alice")
    rule = hooks.add_keep(conn, "room", "r1", 4, actor="alice")
    hooks.remove_hook(conn, hook.id, actor="bob")
    hooks.remove_keep(conn, rule.id, actor="bob")
    rows = [(r["actor"], r["action"], r["target"], r["detail"]) for r in audit.recent(conn)]
    assert rows[:4] == [
        ("bob", "keep.rm", "room:r1", "partition 4"),
        ("bob", "hook.rm", "room:r1", "a.sh"),
        ("alice", "keep.add", "room:r1", "partition 4"),
        ("alice", "hook.add", "room:r1", f"a.sh ({len(SH)} bytes)"),
    ]


def test_the_cli_adds_lists_shows_and_removes(world, home: Path, tmp_path: Path, capsys) -> None:
    script = tmp_path / "10-set-wallpaper.sh"
    script.write_bytes(SH)
    base = ["--home", str(home)]
    assert cli([*base, "hook", "add", "--room", "r1", str(script), "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["name"] == "10-set-wallpaper.sh" and added["target"] == "r1"
    assert cli([*base, "hook", "add", "--host", "pc1", str(script), "--timeout", "5"]) == 0
    assert cli([*base, "hook", "add", "--image", "win11", str(script), "--name", "x.sh"]) == 0
    capsys.readouterr()
    assert cli([*base, "hook", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(h["scope"], h["timeout"]) for h in listed] == [
        ("image", 300),
        ("room", 300),
        ("host", 5),
    ]
    assert cli([*base, "hook", "show", str(added["id"])]) == 0
    assert capsys.readouterr().out == SH.decode()
    assert cli([*base, "hook", "rm", str(added["id"])]) == 0
    assert "removed hook" in capsys.readouterr().out
    assert cli([*base, "hook", "add", "--image", "win11", str(tmp_path / "missing.sh")]) != 0
    err = capsys.readouterr().err
    assert "cannot read" in err and "hint:" in err
    assert cli([*base, "keep", "add", "--room", "r1", "--partition", "3", "--json"]) == 0
    rule = json.loads(capsys.readouterr().out)
    assert (rule["scope"], rule["target"], rule["partition"]) == ("room", "r1", 3)
    assert cli([*base, "keep", "list", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [rule["id"]]
    assert cli([*base, "keep", "rm", str(rule["id"])]) == 0
    assert cli([*base, "keep", "add", "--room", "r7", "--partition", "3"]) != 0
    assert "no room named 'r7'" in capsys.readouterr().err


def test_the_console_page_adds_and_removes_hooks_and_kept_partitions(home: Path) -> None:
    import io

    from test_webui_kit import add_host, add_image, audit_actions, login, make_app

    app = make_app(home)
    add_image(app)
    add_host(app, "52:54:00:00:00:01", "pc1")
    ada = login(app, "ada")
    page = ada.get("/admin/hooks")
    assert page.status_code == 200 and "No hook yet." in page.text
    assert 'value="image:win11"' in page.text and 'value="room:lab-a"' in page.text
    upload = (io.BytesIO(SH), "10-wallpaper.sh")
    r = ada.post("/admin/hooks/add", {"target": "room:lab-a", "timeout": "42", "script": upload},
                 content_type="multipart/form-data")  # fmt: skip
    assert r.status_code == 302
    with app.app_context():
        (hook,) = hooks.hooks(app.extensions["slate"].db())
    assert (hook.scope, hook.target, hook.name, hook.timeout) == (
        "room",
        "lab-a",
        "10-wallpaper.sh",
        42,
    )
    assert "10-wallpaper.sh" in ada.get("/admin/hooks").text
    bad = (io.BytesIO(b"no interpreter\n"), "x.sh")
    r = ada.post("/admin/hooks/add", {"target": "image:win11", "script": bad},
                 content_type="multipart/form-data")  # fmt: skip
    assert r.status_code == 400 and "does not start with" in r.text
    assert (
        ada.post("/admin/hooks/keep/add", {"target": "image:win11", "partition": "3"}).status_code
        == 302
    )
    assert (
        ada.post("/admin/hooks/keep/add", {"target": "image:win11", "partition": "x"}).status_code
        == 400
    )
    with app.app_context():
        (rule,) = hooks.keep_rules(app.extensions["slate"].db())
    assert ada.post(f"/admin/hooks/keep/{rule.id}/delete").status_code == 302
    assert ada.post(f"/admin/hooks/{hook.id}/delete").status_code == 302
    assert "No hook yet." in ada.get("/admin/hooks").text
    actions = [a for _, a in audit_actions(app) if a.startswith(("hook.", "keep."))]
    assert actions == ["hook.add", "keep.add", "keep.rm", "hook.rm"]
    assert ("web:ada", "hook.add") in audit_actions(app)
