"""Capture uploads: missing, chunk PUT verified on arrival, commit, token scope."""

from __future__ import annotations

import json
import os

import pytest
from http_kit import V1, bearer, chunk_url, write_image

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.manifest import ZERO, Chunk, Disk
from appliance.http import create_app
from appliance.store import Store

API = "/api/client/v1/capture"
SIZE = 64 * 1024


@pytest.fixture
def env(home):
    layout = Layout(home)
    base = write_image(layout, "win11", V1)
    write_image(layout, "other", V1)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host("aa:bb:cc:00:00:01", "ref", actor="t")
    job = facade.jobs.capture("ref", "win11", actor="t", note="term 2")
    return app.test_client(), facade, base, facade.jobs.token(job.id), job


def _manifest_body(digests: list[str]) -> bytes:
    chunks = (*(Chunk("hash", d) for d in digests), ZERO)
    disk = Disk(index=0, size=SIZE * len(chunks), chunk_size=SIZE, chunks=chunks)
    return json.dumps({"disks": [disk.to_dict()]}).encode()


def test_capture_round_trip(env):
    client, facade, base, token, job = env
    h = bearer(token)
    assert client.get("/api/client/v1/job", headers=h).get_json()["action"] == "capture"
    new = os.urandom(SIZE)
    new_digest = hash_chunk(new)
    wanted = [base.digests[0], new_digest]
    r = client.post(f"{API}/missing", headers=h, json={"hashes": wanted})
    assert r.get_json() == {"missing": [new_digest]}
    r = client.put(f"{API}/chunk/{new_digest}", headers=h, data=compress_chunk(new))
    assert r.status_code == 200
    assert client.post(f"{API}/missing", headers=h, json={"hashes": wanted}).get_json() == {
        "missing": []
    }
    r = client.post(f"{API}/commit", headers=h, data=_manifest_body(wanted))
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["image"] == "win11" and out["version"] != V1
    m = Store(facade.layout).load("win11", out["version"])
    assert m.note == "term 2" and "ref" in m.source and m.digests() == set(wanted)
    assert facade.jobs.get(job.id).result_version == out["version"]
    assert client.post("/api/client/v1/done", headers=h, json={}).get_json()["state"] == "done"


def test_wrong_chunk_refused_on_arrival(env):
    client, facade, _, token, job = env
    data = os.urandom(SIZE)
    digest = hash_chunk(data)
    r = client.put(f"{API}/chunk/{digest}", headers=bearer(token), data=compress_chunk(b"x" * SIZE))
    assert r.status_code == 400 and "error" in r.get_json()
    r = client.put(f"{API}/chunk/{digest}", headers=bearer(token), data=b"not zstd at all")
    assert r.status_code == 400
    assert not Store(facade.layout).has_chunk(digest)
    assert any("refused" in x["line"] for x in facade.jobs.log_lines(job.id))
    r = client.put(f"{API}/chunk/NOTAHASH", headers=bearer(token), data=b"")
    assert r.status_code == 400


def test_commit_refused_with_missing_chunk(env):
    client, facade, _, token, _ = env
    r = client.post(f"{API}/commit", headers=bearer(token), data=_manifest_body(["ab" * 32]))
    assert r.status_code == 400 and "did not upload" in r.get_json()["error"]
    r = client.post(f"{API}/commit", headers=bearer(token), data=b"{nonsense")
    assert r.status_code == 400
    assert Store(facade.layout).version_ids("win11") == [V1]


def test_capture_token_reads_own_image_only(env):
    client, _, base, token, _ = env
    h = bearer(token)
    assert client.get(f"/store/manifests/win11/{V1}.json", headers=h).status_code == 200
    assert client.get(chunk_url(base.digests[1]), headers=h).status_code == 200
    assert client.get(f"/store/manifests/other/{V1}.json", headers=h).status_code == 403


def test_bad_missing_bodies(env):
    client, _, _, token, _ = env
    h = bearer(token)
    assert client.post(f"{API}/missing", headers=h, json={"hashes": "x"}).status_code == 400
    assert client.post(f"{API}/missing", headers=h, json={"hashes": ["../x"]}).status_code == 400
    assert client.post(f"{API}/missing", headers={}, json={"hashes": []}).status_code == 401
