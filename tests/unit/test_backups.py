"""Backups against a real store and database: promotion, point-in-time restores,
schedules run with a test clock, retention with its protections, and the CLI."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from http_kit import V1, V2, write_image

from appliance import db
from appliance.backups import prune
from appliance.backups.schedules import Schedules
from appliance.config import Layout
from appliance.errors import Conflict, NotFound, UsageError
from appliance.jobs import Jobs
from appliance.store import Store
from appliance.store import policy as policies
from appliance.store.collect import collect

V3 = "20261126T010000Z"
V4 = "20261127T010000Z"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def capture(store: Store, name: str, version: str, seed: int = 0) -> None:
    """Commit a version the way a capture upload does: as a candidate."""
    img = write_image(store.layout, name, version, seed=seed)
    store.manifest_path(name, version).unlink()
    store.commit(img.manifest, candidate=True)


@pytest.fixture
def env(home):
    layout = Layout(home)
    write_image(layout, "win11", V1)  # made before promotion existed: promoted
    write_image(layout, "win11", V2)
    store = Store(layout)
    jobs = Jobs(db.connect(layout.db), layout)
    inv = jobs.inventory
    inv.add_host("aa:bb:cc:00:00:01", "pc1", actor="t", room="lab1")
    inv.add_host("aa:bb:cc:00:00:02", "pc2", actor="t", room="lab1")
    return store, jobs


def test_a_capture_is_a_candidate_until_promoted(env):
    store, jobs = env
    capture(store, "win11", V3)
    assert (store.marks("win11"), store.promoted_ids("win11")) == ({V3: {"candidate"}}, [V1, V2])
    # NAME, a room and a standing rule resolve to the newest promoted version ...
    assert jobs.restore("pc1", "win11", actor="t").version == V2
    jobs.inventory.set_room_auto_restore("lab1", "win11", actor="t")
    assert jobs.inventory.auto_restore_for(jobs.inventory.get_host("pc2")) == "win11"
    assert jobs.restore("pc2", "win11", actor="t").version == V2
    for j in jobs.list_jobs():
        jobs.cancel(j.id, actor="t")
    # ... a date too; an exact id may name the candidate.
    with pytest.raises(NotFound) as info:
        jobs.restore("pc1", "win11@2026-11-24", actor="t")
    assert "no promoted version" in info.value.message
    assert jobs.restore("pc1", f"win11@{V3}", actor="t").version == V3
    jobs.cancel(jobs.list_jobs()[0].id, actor="t")
    assert store.set_mark("win11", V3, "candidate", False)
    assert not store.set_mark("win11", V3, "candidate", False)  # already promoted
    created = jobs.restore_room("lab1", "win11", actor="t")
    assert {j.version for j in created} == {V3}


def test_only_candidates_left(env):
    store, jobs = env
    capture(store, "fresh", V3)
    with pytest.raises(NotFound) as info:
        jobs.restore("pc1", "fresh", actor="t")
    assert f"slate image promote fresh@{V3}" in (info.value.hint or "")


def test_auto_promote_and_import(env, tmp_path):
    store, _jobs = env
    policies.put(store.db(), policies.ImagePolicy("win11", auto_promote=True))
    capture(store, "win11", V3)
    assert store.is_promoted("win11", V3)
    rows = store.db().execute("SELECT actor, action, target FROM audit").fetchall()
    assert ("auto-promote", "image.promote", f"win11@{V3}") in [tuple(r) for r in rows]
    from appliance.store.importer import import_image

    disk = tmp_path / "d.img"
    disk.write_bytes(b"x" * 65536)
    m = import_image(store, [disk], "imported").manifest
    assert store.is_promoted("imported", m.version)


def test_marks_go_with_the_version(env):
    store, _ = env
    capture(store, "cap", V3)
    store.set_mark("cap", V3, "keep", True)
    store.remove("cap", V3)
    assert not (store.root / "manifests" / "cap").exists()
    with pytest.raises(NotFound):
        store.set_mark("cap", V3, "keep", True)


def test_point_in_time_restore(env):
    store, jobs = env
    for v, seed in ((V3, 3), (V4, 4)):
        capture(store, "win11", v, seed=seed)
        store.set_mark("win11", v, "candidate", False)
    assert jobs.restore("pc1", "win11@2026-11-26", actor="t").version == V3
    assert jobs.restore("pc2", "win11@2026-11-25T12:00Z", actor="t").version == V2
    for j in jobs.list_jobs():
        jobs.cancel(j.id, actor="t")
    with pytest.raises(UsageError):
        jobs.restore("pc1", "win11@someday", actor="t")
    with pytest.raises(UsageError):
        jobs.inventory.set_room_auto_restore("lab1", "win11@someday", actor="t")
    jobs.inventory.set_room_auto_restore("lab1", "win11@-1d", actor="t")


# -- schedules ---------------------------------------------------------------------------
def test_schedule_runs_once_per_occurrence(env, caplog):
    _store, jobs = env
    sched = Schedules(jobs.conn, jobs.layout)
    s = sched.add(action="capture", image="win11", every="daily 02:00", host="pc1",
                  actor="t", now=utc("2026-11-30 12:00"))  # fmt: skip
    woken: list[list[str]] = []
    tz = UTC
    assert sched.run_once(utc("2026-12-01 01:59"), tz=tz, wake=woken.append) == []
    ((got, when, ids),) = sched.run_once(utc("2026-12-01 02:00"), tz=tz, wake=woken.append)
    assert (got.id, when) == (s.id, "2026-12-01T02:00:00Z")
    job = jobs.get(ids[0])
    assert (job.action, job.image, job.created_by) == ("capture", "win11", f"schedule:{s.id}")
    assert job.options["occurrence"] == when and woken == []  # no --wake
    # A restart (a new Schedules on a new connection) does not create it again.
    again = Schedules(db.connect(jobs.layout.db), jobs.layout)
    assert again.run_once(utc("2026-12-01 02:10"), tz=tz) == []
    # A crash between creating the job and recording the occurrence: found, not re-made.
    jobs.conn.execute("UPDATE schedules SET last_occurrence=NULL")
    ((_, _, same),) = again.run_once(utc("2026-12-01 02:20"), tz=tz)
    assert same == ids and len(jobs.list_jobs()) == 1
    # The next night the host is still busy: the occurrence is recorded with the reason.
    again.run_once(utc("2026-12-02 02:00"), tz=tz)
    assert "already has an active capture job" in again.get(s.id).last_result
    # Down for two nights, back after the grace period of the third: skipped, logged.
    jobs.cancel(ids[0], actor="t")
    with caplog.at_level(logging.WARNING, "slate.schedule"):
        assert again.run_once(utc("2026-12-05 03:30"), tz=tz) == []
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3 and "2026-12-03T02:00:00Z" in skipped[0]
    assert again.get(s.id).last_occurrence == "2026-12-05T02:00:00Z"


def test_room_restore_schedule_with_wake_and_pause(env):
    _store, jobs = env
    sched = Schedules(jobs.conn, jobs.layout)
    s = sched.add(action="restore", image="win11@-1d", every="mon,thu 18:30", room="lab1",
                  wake=True, actor="t", now=utc("2026-11-26 00:00"))  # fmt: skip
    woken: list[list[str]] = []
    ((_, _, ids),) = sched.run_once(utc("2026-11-26 18:30"), tz=UTC, wake=woken.append)
    assert {jobs.get(i).version for i in ids} == {V2}  # newest promoted at or before -1d
    assert sorted(woken[0]) == ["aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"]
    for i in ids:
        jobs.cancel(i, actor="t")
    sched.set_paused(s.id, True, actor="t")
    assert sched.run_once(utc("2026-11-30 18:30"), tz=UTC) == []
    sched.set_paused(s.id, False, actor="t", now=utc("2026-11-30 18:45"))
    assert sched.run_once(utc("2026-11-30 18:50"), tz=UTC) == []  # came while paused
    assert len(sched.run_once(utc("2026-12-03 18:31"), tz=UTC)) == 1
    sched.remove(s.id, actor="t")
    assert sched.all() == []


def test_schedule_add_refuses(env):
    _, jobs = env
    sched = Schedules(jobs.conn, jobs.layout)
    for kwargs in (
        {"action": "capture", "image": "win11", "every": "daily 02:00", "room": "lab1"},
        {"action": "capture", "image": "a/b", "every": "daily 02:00", "host": "pc1"},
        {"action": "restore", "image": "win11@soon", "every": "daily 02:00", "host": "pc1"},
        {"action": "restore", "image": "win11", "every": "sometimes", "host": "pc1"},
        {"action": "restore", "image": "win11", "every": "daily 02:00"},
    ):
        with pytest.raises(UsageError):
            sched.add(actor="t", **kwargs)
    with pytest.raises(NotFound):
        sched.add(action="restore", image="win11", every="daily 02:00", host="nobody", actor="t")


# -- retention ---------------------------------------------------------------------------
def test_prune_keeps_what_is_protected(env):
    store, jobs = env
    for v, seed in ((V3, 3), (V4, 4)):
        capture(store, "win11", v, seed=seed)
    v3_only = store.digests("win11", V3) - store.digests("win11", V4)
    policies.put(store.db(), policies.ImagePolicy("win11", keep_last=1))
    # V4 is the last, V2 the newest promoted (candidates V3, V4); V1 goes, V3 goes.
    planned = prune.plan(store, "win11")
    assert planned.remove == [V1, V3]
    assert planned.keep == {V4: ["last 1"], V2: ["newest promoted version"]}
    # A rule naming V1 (by time), a pending job of V3, a keep mark: all stay.
    jobs.inventory.set_room_auto_restore("lab1", "win11@2026-11-25T10:30Z", actor="t")
    job = jobs.restore("pc1", f"win11@{V3}", actor="t")
    assert prune.plan(store, "win11").remove == []
    jobs.cancel(job.id, actor="t")
    jobs.inventory.set_room_auto_restore("lab1", None, actor="t")
    store.set_mark("win11", V3, "keep", True)
    result = prune.prune(store, "win11", actor="t", dry_run=True)
    assert (result.remove, result.removed) == ([V1], [])
    assert store.version_ids("win11") == [V1, V2, V3, V4]
    store.set_mark("win11", V3, "keep", False)
    # A capture uploading to the image: refused, nothing removed (a pending one is not:
    # it will ask what is missing after the prune).
    cap = jobs.capture("pc2", "win11", actor="t")
    assert prune.prune(store, "win11", actor="t", dry_run=True).remove == [V1, V3]
    jobs.transition(cap.id, "running")
    with pytest.raises(Conflict):
        prune.prune(store, "win11", actor="t")
    assert prune.after_captures(store) == []
    jobs.cancel(cap.id, actor="t")
    result = prune.prune(store, "win11", actor="t")
    assert result.removed == [V1, V3] and store.version_ids("win11") == [V2, V4]
    assert result.gc is not None and result.gc.removed >= len(v3_only)
    assert not any(store.has_chunk(d) for d in v3_only)
    assert collect(store).removed == 0


def test_prune_after_captures(env):
    store, jobs = env
    policies.put(store.db(), policies.ImagePolicy("win11", keep_last=1))
    assert prune.after_captures(store) == []  # no capture finished: nothing to do
    capture(store, "win11", V3)
    store.set_mark("win11", V3, "candidate", False)
    job = jobs.capture("pc1", "win11", actor="t")
    jobs.transition(job.id, "running")
    jobs.done(job.id)
    (result,) = prune.after_captures(store)
    assert result.removed == [V1, V2]
    # Once per finished capture (a second pass in the same second removes nothing).
    assert all(not r.removed for r in prune.after_captures(store))


# -- the CLI -----------------------------------------------------------------------------
def test_cli(slate, home):
    layout = Layout(home)
    write_image(layout, "lab", V1, seed=1)
    write_image(layout, "lab", V2, seed=1)  # the same chunks: all shared
    versions = json.loads(slate("image", "versions", "lab", "--json", check=True).stdout)
    assert [(v["version"], v["promoted"], v["shared_chunks"]) for v in versions] == [
        (V1, True, 0), (V2, True, 3)]  # fmt: skip
    assert versions[1]["new_bytes"] == 0 and versions[1]["shared_bytes"] > 0
    slate("image", "unpromote", f"lab@{V2}", check=True)
    listed = json.loads(slate("image", "list", "--json", check=True).stdout)
    assert [r["promoted"] for r in listed] == [True, False]
    assert "candidate" in slate("image", "versions", "lab", check=True).stdout
    assert f"image    lab@{V1}" in slate("image", "show", "lab", check=True).stdout
    slate("image", "promote", f"lab@{V2}", check=True)
    bad = slate("image", "promote", "lab")
    assert bad.returncode != 0 and "NAME@VERSION" in bad.stderr
    pol = json.loads(slate("image", "policy", "lab", "--auto-promote", "--keep-last", "1",
                           "--json", check=True).stdout)  # fmt: skip
    assert (pol["auto_promote"], pol["keep_last"], pol["keep_daily"]) == (True, 1, None)
    dry = json.loads(slate("image", "prune", "lab", "--dry-run", "--json", check=True).stdout)
    assert dry["remove"] == [V1] and dry["removed"] == []
    assert "would remove 1" in slate("image", "prune", "lab", "--dry-run", check=True).stdout
    slate("image", "prune", "lab", check=True)
    assert Store(layout).version_ids("lab") == [V2]
    audit = db.connect(layout.db).execute("SELECT action, target FROM audit").fetchall()
    assert ("image.unpromote", f"lab@{V2}") in [tuple(r) for r in audit]
    assert ("image.prune", f"lab@{V1}") in [tuple(r) for r in audit]
    # Schedules and one-off captures at a time.
    slate("host", "add", "aa:bb:cc:00:00:09", "--name", "pc9", check=True)
    out = json.loads(slate("schedule", "add", "--host", "pc9", "--capture", "lab", "--every",
                           "weekly sun 03:00", "--wake", "--json", check=True).stdout)  # fmt: skip
    assert out[0]["every"] == "weekly sun 03:00" and out[0]["wake"] and out[0]["next_run"]
    slate("schedule", "pause", str(out[0]["id"]), check=True)
    assert "paused" in slate("schedule", "list", check=True).stdout
    slate("schedule", "rm", str(out[0]["id"]), check=True)
    assert json.loads(slate("schedule", "list", "--json", check=True).stdout) == []
    job = json.loads(slate("job", "capture", "--host", "pc9", "--image", "lab", "--at", "+2h",
                           "--json", check=True).stdout)[0]  # fmt: skip
    when = datetime.strptime(job["not_before"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=110) < when - datetime.now(UTC) <= timedelta(hours=2)


def test_housekeeping_runs_schedules_and_wakes(env):
    """The appliance's loop: a due --wake schedule makes its job and sends a real magic
    packet to the configured Wake-on-LAN target."""
    import socket
    from types import SimpleNamespace

    from appliance.machines.power import magic_packet
    from appliance.server import Housekeeping

    _, jobs = env
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        settings = SimpleNamespace(wol_target=f"127.0.0.1:{sock.getsockname()[1]}")
        Schedules(jobs.conn, jobs.layout).add(
            action="restore", image="win11", every="daily 02:00", host="pc1", wake=True,
            actor="t", now=utc("2026-11-30 12:00"),
        )  # fmt: skip
        house = Housekeeping(jobs.layout, lambda: jobs.conn, settings=settings)  # type: ignore[arg-type]
        when = datetime(2026, 12, 1, 2, 0, 10).astimezone().astimezone(UTC)  # local 02:00
        house.run_backups(when)
        assert sock.recv(200) == magic_packet("aa:bb:cc:00:00:01")
    (job,) = jobs.list_jobs()
    assert (job.action, job.version, job.created_by) == ("restore", V2, "schedule:1")
