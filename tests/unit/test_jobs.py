"""Jobs: tokens, state moves, conflicts, scheduling, retry, versions in use, audit."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime

import pytest
from http_kit import V1, V2, write_image

from appliance import db
from appliance.config import Layout
from appliance.errors import Conflict, IllegalTransition, NotFound, PeerError, UsageError
from appliance.jobs import Jobs, parse_disk_hint, parse_when, versions_in_use
from appliance.jobs import testing as job_rows


@pytest.fixture
def jobs(home):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    write_image(layout, "win11", V2)
    js = Jobs(db.connect(layout.db), layout)
    js.inventory.add_host("aa:bb:cc:00:00:01", "pc1", actor="t", room="lab1", disk_hint="size=1T")
    js.inventory.add_host("aa:bb:cc:00:00:02", "pc2", actor="t", room="lab1")
    return js


def test_token_only_hashed_and_stable(jobs, home):
    job = jobs.restore("pc1", "win11", actor="t")
    token = jobs.token(job.id)
    assert len(token) == 64 and jobs.token(job.id) == token
    [row] = job_rows.rows(jobs.conn, job_id=job.id)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in " ".join(str(v) for v in tuple(row))
    assert token.encode() not in (home / "slate.db").read_bytes()
    assert stat.S_IMODE((home / "job-secret").stat().st_mode) == 0o600
    assert jobs.by_token(token).id == job.id
    with pytest.raises(PeerError):
        jobs.by_token("0" * 64)
    # A second job gets another token; another Jobs instance derives the same one.
    other = jobs.restore("pc2", "win11", actor="t")
    assert jobs.token(other.id) != token
    assert Jobs(db.connect(home / "slate.db"), Layout(home)).token(job.id) == token


def test_version_resolved_at_creation(jobs):
    assert jobs.restore("pc1", "win11", actor="t").version == V2
    assert jobs.restore("pc2", f"win11@{V1}", actor="t").version == V1
    with pytest.raises(NotFound):
        jobs.restore("pc1", "nope", actor="t")
    with pytest.raises(UsageError):
        jobs.restore("pc1", "win11@yesterday", actor="t")


def test_one_active_job_per_host(jobs):
    job = jobs.restore("pc1", "win11", actor="t")
    with pytest.raises(Conflict) as info:
        jobs.capture("pc1", "img", actor="t")
    assert f"slate job cancel {job.id}" in (info.value.hint or "")
    jobs.cancel(job.id, actor="t")
    assert jobs.capture("pc1", "img", actor="t").action == "capture"


def test_room_restore_all_or_nothing(jobs):
    jobs.restore("pc2", "win11", actor="t")
    with pytest.raises(Conflict):
        jobs.restore_room("lab1", "win11", actor="t")
    assert len(jobs.list_jobs()) == 1
    jobs.cancel(jobs.list_jobs()[0].id, actor="t")
    created = jobs.restore_room("lab1", f"win11@{V1}", actor="t")
    assert sorted(j.host_name for j in created) == ["pc1", "pc2"]


def test_transitions_follow_the_table(jobs):
    job = jobs.restore("pc1", "win11", actor="t")
    with pytest.raises(IllegalTransition):
        jobs.transition(job.id, "verifying")
    for state in ("booting", "running", "verifying", "running", "verifying"):
        assert jobs.transition(job.id, state).state == state
    done = jobs.done(job.id, verified_bytes=99)
    assert (done.state, done.verified_bytes) == ("done", 99) and done.finished_at
    with pytest.raises(IllegalTransition):
        jobs.transition(job.id, "running")
    with pytest.raises(IllegalTransition):
        jobs.cancel(job.id, actor="t")
    with pytest.raises(Conflict):
        jobs.progress(job.id, phase="x", done=1, total=2)


def test_progress_log_fail_retry(jobs):
    job = jobs.restore("pc1", "win11", actor="t")
    jobs.transition(job.id, "running")
    jobs.progress(job.id, phase="writing", done=5, total=10, rate=2.5, eta=2)
    jobs.log(job.id, ["one", "two"])
    failed = jobs.failed(job.id, "disk too small")
    assert (failed.state, failed.reason, failed.bytes_done) == ("failed", "disk too small", 5)
    assert [x["line"] for x in jobs.log_lines(job.id)] == ["one", "two"]
    again = jobs.retry(job.id, actor="t")
    assert (again.action, again.image, again.version, again.state) == (
        "restore",
        "win11",
        job.version,
        "pending",
    )
    assert again.options == job.options
    with pytest.raises(Conflict):
        jobs.retry(again.id, actor="t")


def test_options_and_hints(jobs):
    job = jobs.restore("pc1", "win11", actor="t", options={"after": "poweroff"})
    assert job.options == {
        "disk": {"size": "1T"},
        "grow": False,
        "after": "poweroff",
        "give_up_after": 21600,
        "transport": "auto",
    }
    with pytest.raises(UsageError):
        jobs.restore("pc2", "win11", actor="t", options={"after": "explode"})
    with pytest.raises(UsageError):
        jobs.restore("pc2", "win11", actor="t", options={"transport": "carrier-pigeon"})
    assert parse_disk_hint("serial=S1, wwn=0x5") == {"serial": "S1", "wwn": "0x5"}
    with pytest.raises(UsageError):
        parse_disk_hint("serial")


def test_scheduled_job_is_not_due_before_its_time(jobs):
    job = jobs.restore("pc1", "win11", actor="t", not_before="2030-01-01T00:00:00Z")
    assert jobs.active_for("aa:bb:cc:00:00:01").id == job.id
    assert jobs.due_for("aa:bb:cc:00:00:01") is None
    assert jobs.due_for("aa:bb:cc:00:00:01", now="2030-01-01T00:00:00Z").id == job.id


def test_parse_when():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_when("+2h", now) == "2026-11-25T14:00:00Z"
    assert parse_when("+30m", now) == "2026-11-25T12:30:00Z"
    assert parse_when("2026-12-01T08:00Z", now) == "2026-12-01T08:00:00Z"
    assert parse_when("2026-12-01T09:00+01:00", now) == "2026-12-01T08:00:00Z"
    assert parse_when("12:00", now) > "2026-11-25T12:00:00Z"  # next such time, not now
    for bad in ("soon", "+2y", "25:00", ""):
        with pytest.raises(UsageError):
            parse_when(bad, now)


def test_versions_in_use_and_audit(jobs):
    a = jobs.restore("pc1", f"win11@{V1}", actor="alice")
    jobs.restore("pc2", "win11", actor="bob")
    assert versions_in_use(jobs.conn) == {("win11", V1), ("win11", V2)}
    jobs.cancel(a.id, actor="carol")
    assert versions_in_use(jobs.conn) == {("win11", V2)}
    jobs.retry(a.id, actor="dave")
    jobs.delete(a.id, actor="erin")
    rows = jobs.conn.execute("SELECT actor, action FROM audit WHERE action LIKE 'job.%'").fetchall()
    assert [tuple(r) for r in rows] == [
        ("alice", "job.restore"),
        ("bob", "job.restore"),
        ("carol", "job.cancel"),
        ("dave", "job.retry"),
        ("erin", "job.delete"),
    ]
    assert jobs.get(a.id + 2).created_by == "dave"


def test_host_with_active_job_cannot_be_removed(jobs):
    job = jobs.restore("pc1", "win11", actor="t")
    with pytest.raises(Conflict) as info:
        jobs.inventory.remove_host("pc1", actor="t")
    assert f"slate job cancel {job.id}" in (info.value.hint or "")
    jobs.cancel(job.id, actor="t")
    jobs.inventory.remove_host("pc1", actor="t")


def _age(jobs, job_id: int, seconds: float) -> None:
    """Pretend the job's last news is ``seconds`` old."""
    job_rows.age(jobs.conn, job_id, seconds)


def test_silent_jobs_fail_with_a_reason_and_the_rest_are_left_alone(jobs):
    from appliance.jobs import BOOT_TIMEOUT, STALE_MARGIN

    booting = jobs.restore("pc1", "win11", actor="t")
    jobs.transition(booting.id, "booting")
    _age(jobs, booting.id, BOOT_TIMEOUT + 60)
    running = jobs.restore("pc2", "win11", actor="t", options={"give_up_after": 600})
    jobs.transition(running.id, "running")
    jobs.progress(running.id, phase="restore", done=25, total=100)
    _age(jobs, running.id, 600 + STALE_MARGIN + 60)
    expired = {j.id: j for j in jobs.expire_stale()}
    assert set(expired) == {booting.id, running.id}
    assert expired[booting.id].state == "failed"
    assert "never called in" in expired[booting.id].reason
    assert expired[running.id].state == "failed"
    assert "restore, 25 % done" in expired[running.id].reason
    assert "retry" in expired[running.id].reason
    actions = [r["action"] for r in jobs.conn.execute("SELECT action FROM audit")]
    assert actions.count("job.expire") == 2
    # Failed jobs can be retried, and a job with recent news is not touched.
    again = jobs.retry(running.id, actor="t")
    jobs.transition(again.id, "running")
    _age(jobs, again.id, 600)  # within its limit (give_up_after + margin)
    assert jobs.expire_stale() == []
    assert jobs.get(again.id).state == "running"


def test_pending_and_scheduled_jobs_never_expire(jobs):
    from appliance.jobs import BOOT_TIMEOUT

    job = jobs.restore("pc1", "win11", actor="t", not_before="2099-01-01T00:00:00Z")
    _age(jobs, job.id, 10 * BOOT_TIMEOUT)
    assert jobs.expire_stale() == []
    assert jobs.get(job.id).state == "pending"
