"""The client API and /store/ through Flask's test client: shapes, auth, states."""

from __future__ import annotations

import re

import pytest
from http_kit import V1, V2, bearer, chunk_url, write_image

from appliance.config import Layout
from appliance.formats.chunkio import decode_chunk
from appliance.http import create_app
from appliance.machines import identity


@pytest.fixture
def env(home):
    layout = Layout(home)
    image = write_image(layout, "win11", V1)
    other = write_image(layout, "ubuntu", V1)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host("AA-BB-CC-00-00-01", "pc1", actor="test", disk_hint="serial=S1")
    facade.inventory.add_host("aa:bb:cc:00:00:02", "pc2", actor="test")
    job = facade.jobs.restore("pc1", "win11", actor="test")
    job2 = facade.jobs.restore("pc2", "ubuntu", actor="test")

    class Env:
        pass

    e = Env()
    e.app, e.client, e.facade, e.image, e.other = app, app.test_client(), facade, image, other
    e.job, e.token = job, facade.jobs.token(job.id)
    e.job2, e.token2 = job2, facade.jobs.token(job2.id)
    return e


def test_job_payload_shape_and_running(env):
    r = env.client.get("/api/client/v1/job", headers=bearer(env.token))
    assert r.status_code == 200
    body = r.get_json()
    kept = identity.machine_id(env.facade.db(), "aa:bb:cc:00:00:01")  # made at GET /job
    assert re.fullmatch("[0-9a-f]{32}", kept)
    assert body == {
        "id": env.job.id,
        "action": "restore",
        "state": "running",
        "host": {"mac": "aa:bb:cc:00:00:01", "name": "pc1"},
        "image": "win11",
        "version": V1,
        "manifest": f"/store/manifests/win11/{V1}.json",
        "store": "/store/",
        "options": {
            "disk": {"serial": "S1"},
            "grow": False,
            "after": "reboot",
            "give_up_after": 21600,
            "transport": "auto",
        },
        # Alone: this machine restores by HTTP (auto takes multicast from two machines).
        "roomcast": "it is the only machine restoring this version (auto: multicast from 2)",
        "identity": {
            "enabled": True,
            "hostname": "pc1",
            "machine_id": kept,
            "ssh_host_keys": "fresh",
        },
    }


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": ""}],
)
def test_missing_or_wrong_token_is_401(env, headers):
    for method, url in [
        ("get", "/api/client/v1/job"),
        ("post", "/api/client/v1/progress"),
        ("get", f"/store/manifests/win11/{V1}.json"),
        ("get", chunk_url(env.image.digests[0])),
    ]:
        r = getattr(env.client, method)(url, headers=headers, json={})
        assert r.status_code == 401, url
        assert "error" in r.get_json()


def test_manifest_and_chunks_of_own_image(env):
    r = env.client.get(f"/store/manifests/win11/{V1}.json", headers=bearer(env.token))
    assert r.status_code == 200
    assert r.data == env.image.manifest.to_json()
    for digest, data in env.image.chunks.items():
        r = env.client.get(chunk_url(digest), headers=bearer(env.token))
        assert r.status_code == 200
        assert r.headers["ETag"] == f'"{digest}"'
        assert decode_chunk(digest, r.data, len(data)) == data


def test_token_cannot_read_other_image(env):
    r = env.client.get(f"/store/manifests/ubuntu/{V1}.json", headers=bearer(env.token))
    assert r.status_code == 403
    r = env.client.get(chunk_url(env.other.digests[0]), headers=bearer(env.token))
    assert r.status_code == 403
    # ...while the other job's token reads it, and not ours.
    assert (
        env.client.get(chunk_url(env.other.digests[0]), headers=bearer(env.token2)).status_code
        == 200
    )
    assert (
        env.client.get(chunk_url(env.image.digests[0]), headers=bearer(env.token2)).status_code
        == 403
    )


def test_restore_token_reads_only_its_version(env, home):
    write_image(Layout(home), "win11", V2)
    r = env.client.get(f"/store/manifests/win11/{V2}.json", headers=bearer(env.token))
    assert r.status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "/store/../slate.db",
        "/store/%2e%2e/slate.db",
        "/store/manifests/..%2f..%2fslate.db/x.json",
        "/store/manifests/win11/..%2F..%2F..%2Fjob-secret",
        "/store/chunks/../../job-secret",
        "/store/chunks/aa/../../../slate.db",
        "/store/chunks/zz/" + "z" * 64 + ".zst",
        "/store/manifests/win11/" + V1,
        "/store/job-secret",
    ],
)
def test_store_path_traversal_refused(env, url):
    r = env.client.get(url, headers=bearer(env.token))
    assert r.status_code in (400, 403, 404), url
    assert b"slate-job" not in r.data and len(r.data) < 2000


def test_range_requests(env):
    digest = env.image.digests[0]
    full = env.client.get(chunk_url(digest), headers=bearer(env.token)).data
    r = env.client.get(chunk_url(digest), headers={**bearer(env.token), "Range": "bytes=10-99"})
    assert r.status_code == 206
    assert r.data == full[10:100]
    assert r.headers["Content-Range"] == f"bytes 10-99/{len(full)}"
    r = env.client.get(chunk_url(digest), headers={**bearer(env.token), "Range": "bytes=-5"})
    assert r.status_code == 206 and r.data == full[-5:]
    r = env.client.get(
        chunk_url(digest), headers={**bearer(env.token), "Range": f"bytes={len(full)}-"}
    )
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(full)}"
    r = env.client.head(chunk_url(digest), headers=bearer(env.token))
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(full))


def test_progress_log_done(env):
    h = bearer(env.token)
    jobs = env.facade.jobs
    assert env.client.get("/api/client/v1/job", headers=h).status_code == 200
    r = env.client.post(
        "/api/client/v1/progress",
        headers=h,
        json={"phase": "writing", "done": 10, "total": 100, "rate": 5.5, "eta": 18},
    )
    assert r.status_code == 200
    job = jobs.get(env.job.id)
    assert (job.phase, job.bytes_done, job.bytes_total, job.rate, job.eta) == (
        "writing",
        10,
        100,
        5.5,
        18.0,
    )
    assert (
        env.client.post("/api/client/v1/log", headers=h, json={"lines": ["a", "b"]}).status_code
        == 200
    )
    assert [x["line"] for x in jobs.log_lines(env.job.id)] == ["a", "b"]
    r = env.client.post("/api/client/v1/state", headers=h, json={"state": "verifying"})
    assert r.get_json() == {"id": env.job.id, "state": "verifying"}
    r = env.client.post("/api/client/v1/done", headers=h, json={"verified_bytes": 1234})
    assert r.get_json() == {"id": env.job.id, "state": "done"}
    assert jobs.get(env.job.id).verified_bytes == 1234
    # The job has ended: its token now gets 409 everywhere.
    r = env.client.get("/api/client/v1/job", headers=h)
    assert r.status_code == 409 and "ended" in r.get_json()["error"]
    assert env.client.get(chunk_url(env.image.digests[0]), headers=h).status_code == 409


def test_failed_and_bad_bodies(env):
    h = bearer(env.token)
    assert env.client.post("/api/client/v1/progress", headers=h, data="x").status_code == 400
    r = env.client.post("/api/client/v1/progress", headers=h, json={"done": "many"})
    assert r.status_code == 400
    assert env.client.post("/api/client/v1/log", headers=h, json={"lines": "x"}).status_code == 400
    r = env.client.post("/api/client/v1/state", headers=h, json={"state": "done"})
    assert r.status_code == 400
    r = env.client.post("/api/client/v1/failed", headers=h, json={"reason": "disk too small"})
    assert r.get_json()["state"] == "failed"
    job = env.facade.jobs.get(env.job.id)
    assert job.reason == "disk too small" and job.finished_at


def test_illegal_transition_is_409(env):
    h = bearer(env.token)
    # pending → verifying is not in the state table
    r = env.client.post("/api/client/v1/state", headers=h, json={"state": "verifying"})
    assert r.status_code == 409
    assert "cannot go from" in r.get_json()["error"]


def test_capture_endpoints_refused_for_restore_job(env):
    r = env.client.post(
        "/api/client/v1/capture/missing", headers=bearer(env.token), json={"hashes": []}
    )
    assert r.status_code == 403


def test_etag_revalidation(env):
    digest = env.image.digests[0]
    h = {**bearer(env.token), "If-None-Match": f'"{digest}"'}
    r = env.client.get(chunk_url(digest), headers=h)
    assert r.status_code == 304 and r.data == b""
