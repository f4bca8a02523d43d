"""A job token is worth its job and no more (docs/security.md): what a capture may name
and read, commit once, bound to the first caller's address, caps on what it can store."""

from __future__ import annotations

import json
import os

import pytest
from http_kit import V1, bearer, chunk_url, write_image

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.manifest import ZERO, Chunk, Disk, Manifest
from appliance.http import client_api, create_app
from appliance.jobs import scope as jobscope
from appliance.jobs import testing as job_rows
from appliance.machines import testing as host_rows
from appliance.store import Store

API = "/api/client/v1"
SIZE = 64 * 1024
LATER = "20991231T000000Z"  # a version committed after the job was created
HERE = {"REMOTE_ADDR": "10.0.0.5"}
THERE = {"REMOTE_ADDR": "10.0.0.66"}


@pytest.fixture
def env(home):
    layout = Layout(home)
    base = write_image(layout, "win11", V1)
    other = write_image(layout, "other", V1)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host("aa:bb:cc:00:00:01", "ref", actor="t")
    job = facade.jobs.capture("ref", "win11", actor="t")
    later = write_image(layout, "win11", LATER)

    class Env:
        pass

    e = Env()
    e.client = app.test_client()
    e.client.environ_base.update(HERE)
    e.app, e.facade, e.base, e.other, e.later, e.job = app, facade, base, other, later, job
    e.h = bearer(facade.jobs.token(job.id))
    return e


def _body(digests: list[str]) -> bytes:
    chunks = (*(Chunk("hash", d) for d in digests), ZERO)
    disk = Disk(index=0, size=SIZE * len(chunks), chunk_size=SIZE, chunks=chunks)
    return json.dumps({"disks": [disk.to_dict()]}).encode()


def _upload(env, data: bytes) -> str:
    digest = hash_chunk(data)
    r = env.client.put(f"{API}/capture/chunk/{digest}", headers=env.h, data=compress_chunk(data))
    assert r.status_code == 200, r.get_json()
    return digest


def _missing(env, hashes: list[str]) -> list[str]:
    r = env.client.post(f"{API}/capture/missing", headers=env.h, json={"hashes": hashes})
    assert r.status_code == 200
    return list(r.get_json()["missing"])


def test_missing_answers_only_about_chunks_the_job_may_name(env):
    own, foreign, late = env.base.digests[0], env.other.digests[0], env.later.digests[0]
    # All three are in the store; only the base version's chunk is reported present.
    assert _missing(env, [own, foreign, late]) == [foreign, late]


def test_commit_naming_another_images_chunk_is_refused_and_logged(env):
    store = Store(env.facade.layout)
    r = env.client.post(
        f"{API}/capture/commit",
        headers=env.h,
        data=_body([env.base.digests[0], env.other.digests[0]]),
    )
    assert r.status_code == 400
    assert "did not upload" in r.get_json()["error"]
    assert store.version_ids("win11") == [V1, LATER]
    lines = [x["line"] for x in env.facade.jobs.log_lines(env.job.id)]
    assert any("commit refused" in x and env.other.digests[0] in x for x in lines)
    assert env.facade.jobs.get(env.job.id).result_version is None


def test_commit_naming_a_later_versions_chunk_is_refused(env):
    r = env.client.post(f"{API}/capture/commit", headers=env.h, data=_body([env.later.digests[1]]))
    assert r.status_code == 400


def test_uploading_a_chunk_the_store_has_lets_the_job_name_it(env):
    foreign = env.other.chunks[env.other.digests[0]]
    _upload(env, foreign)  # proves the client has the bytes
    assert _missing(env, [env.other.digests[0]]) == []
    r = env.client.post(f"{API}/capture/commit", headers=env.h, data=_body([env.other.digests[0]]))
    assert r.status_code == 200, r.get_json()


def test_capture_token_reads_bases_and_its_uploads_only(env):
    c, h = env.client, env.h
    assert c.get(f"/store/manifests/win11/{V1}.json", headers=h).status_code == 200
    assert c.get(chunk_url(env.base.digests[0]), headers=h).status_code == 200
    assert c.get(f"/store/manifests/win11/{LATER}.json", headers=h).status_code == 403
    assert c.get(chunk_url(env.later.digests[0]), headers=h).status_code == 403
    assert c.get(f"/store/manifests/other/{V1}.json", headers=h).status_code == 403
    assert c.get(chunk_url(env.other.digests[0]), headers=h).status_code == 403
    mine = _upload(env, os.urandom(SIZE))
    assert c.get(chunk_url(mine), headers=h).status_code == 200


def test_a_version_committed_just_before_the_job_is_a_base(home):
    # Same second as the job: the index row, taken with the job's row, decides.
    layout = Layout(home)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    img = write_image(layout, "pc", "20261125T100000Z")
    store = Store(layout)
    now = Manifest(
        "pc", store.new_version_id("pc"), "2026-12-01T00:00:00Z", disks=img.manifest.disks
    )
    store.commit(now)
    facade.inventory.add_host("aa:bb:cc:00:00:09", "pc9", actor="t")
    job = facade.jobs.capture("pc9", "pc", actor="t")
    assert now.version in jobscope.bases(facade.db(), job.id, [now.version], "1970-01-01T00:00:00Z")
    client = app.test_client()
    r = client.get(
        f"/store/manifests/pc/{now.version}.json", headers=bearer(facade.jobs.token(job.id))
    )
    assert r.status_code == 200


def test_commit_is_idempotent_per_job(env):
    digest = _upload(env, os.urandom(SIZE))
    first = env.client.post(f"{API}/capture/commit", headers=env.h, data=_body([digest]))
    again = env.client.post(f"{API}/capture/commit", headers=env.h, data=_body([digest]))
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert len(Store(env.facade.layout).version_ids("win11")) == 3  # V1, LATER, one new


def test_done_before_commit_is_refused(env):
    assert env.client.get(f"{API}/job", headers=env.h).get_json()["state"] == "running"
    r = env.client.post(f"{API}/done", headers=env.h, json={"verified_bytes": 1})
    assert r.status_code == 409
    assert env.facade.jobs.get(env.job.id).state == "running"


def test_token_is_bound_to_the_first_callers_address(env):
    c, h = env.client, env.h
    assert c.get(f"{API}/job", headers=h).status_code == 200
    for path in (f"{API}/job", f"/store/manifests/win11/{V1}.json", chunk_url(env.base.digests[0])):
        assert c.get(path, headers=h, environ_base=THERE).status_code == 403, path
    r = c.post(f"{API}/failed", headers=h, json={"reason": "x"}, environ_base=THERE)
    assert r.status_code == 403
    assert env.facade.jobs.get(env.job.id).state == "running"
    found = jobscope.binding(env.facade.db(), env.job.id)
    assert (found.address, found.refused_calls, found.refused_from) == ("10.0.0.5", 4, "10.0.0.66")
    warnings = [x["line"] for x in env.facade.jobs.log_lines(env.job.id) if "WARNING" in x["line"]]
    assert len(warnings) == 1 and "10.0.0.66" in warnings[0]  # one line per address, not a flood
    assert c.get(f"{API}/job", headers=h).status_code == 200  # the machine itself goes on


def test_token_ends_with_the_job(env):
    env.facade.jobs.cancel(env.job.id, actor="t")
    assert env.client.get(f"{API}/job", headers=env.h).status_code == 409
    assert env.client.get(chunk_url(env.base.digests[0]), headers=env.h).status_code == 409


def test_log_lines_per_job_are_capped(env, monkeypatch):
    monkeypatch.setattr(client_api, "MAX_JOB_LOG", 10)
    for _ in range(3):
        r = env.client.post(f"{API}/log", headers=env.h, json={"lines": ["x"] * 4})
        assert r.status_code == 200
    lines = env.facade.jobs.log_lines(env.job.id)
    assert len(lines) == 10 and "dropped" in lines[-1]["line"]
    assert env.client.post(f"{API}/log", headers=env.h, json={"lines": ["y"]}).get_json() == {
        "ok": True,
        "dropped": 1,
    }
    assert len(env.facade.jobs.log_lines(env.job.id)) == 10


def test_progress_calls_per_second_are_capped(env, monkeypatch):
    monkeypatch.setattr(client_api.time, "monotonic", lambda: 1000.0)
    body = {"phase": "capture", "done": 1, "total": 2}
    codes = [
        env.client.post(f"{API}/progress", headers=env.h, json=body).status_code for _ in range(7)
    ]
    assert codes == [200, 200, 200, 200, 200, 429, 429]
    monkeypatch.setattr(client_api.time, "monotonic", lambda: 1001.0)
    assert env.client.post(f"{API}/progress", headers=env.h, json=body).status_code == 200


def test_body_limits_large_only_for_chunks_and_manifests(env):
    big = b" " * (2 * 1024 * 1024) + b'{"state": "running"}'
    r = env.client.post(f"{API}/state", headers=env.h, data=big, content_type="application/json")
    assert r.status_code == 413
    data = os.urandom(SIZE) * 40  # a 2.5 MiB chunk that does not compress
    digest = hash_chunk(data)
    r = env.client.put(f"{API}/capture/chunk/{digest}", headers=env.h, data=compress_chunk(data))
    assert r.status_code == 200


def test_seen_rows_for_unknown_machines_are_capped(env):
    conn = env.facade.db()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO seen(mac, last_seen) VALUES (?, ?)",
        [
            (f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", f"2026-01-01T00:00:{i % 60:02d}Z")
            for i in range(5000)
        ],
    )
    conn.execute("COMMIT")
    env.facade.inventory.record_seen("02:00:00:ff:ff:ff")
    (count,) = conn.execute("SELECT COUNT(*) FROM seen").fetchone()
    assert count == 5000
    assert conn.execute("SELECT 1 FROM seen WHERE mac='02:00:00:ff:ff:ff'").fetchone()


def test_concurrent_commits_of_one_job_make_one_version(env):
    import threading

    digest = _upload(env, os.urandom(SIZE))
    answers: list[tuple[int, object]] = []

    def commit() -> None:
        client = env.app.test_client()
        client.environ_base.update(HERE)
        r = client.post(f"{API}/capture/commit", headers=env.h, data=_body([digest]))
        answers.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=commit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a[0] for a in answers] == [200] * 4
    assert len({json.dumps(a[1], sort_keys=True) for a in answers}) == 1
    assert len(Store(env.facade.layout).version_ids("win11")) == 3  # V1, LATER, one new


def test_migration_gives_open_capture_jobs_their_bases_by_time(home):
    import sqlite3

    from appliance import db

    conn = sqlite3.connect(home / "old.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    db.schema_version(conn)
    for number, name, sql in db._migrations():
        if number >= 8:
            break
        for statement in db._split(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations(number, name) VALUES (?, ?)", (number, name))
    host_rows.insert_plain(conn, "aa:bb:cc:00:00:01", "ref")
    conn.execute("INSERT INTO images(name) VALUES ('win11')")
    for version in ("20261125T100000Z", "20261201T120000Z"):
        conn.execute(
            "INSERT INTO versions(image, version, created_at, logical_size, stored_size)"
            " VALUES ('win11', ?, '', 0, 0)",
            (version,),
        )
    job_rows.insert_plain(conn, "aa:bb:cc:00:00:01", "capture", "win11", "2026-11-30T08:00:00Z")
    conn.close()
    upgraded = db.connect(home / "old.db")
    rows = upgraded.execute("SELECT job, version FROM capture_bases").fetchall()
    assert [tuple(r) for r in rows] == [(1, "20261125T100000Z")]  # not the later one
