"""Authorization matrix of the client API and the store, with literal expectations:
every endpoint by token kind by target → status.  Each case runs on a fresh appliance.

Token kinds: ``restore`` (pc1 restoring win11@V1), ``capture`` (pc2 capturing win11,
created after V1 and V2 were committed and before LATER), ``ended`` (a cancelled
restore job's token), ``other`` (pc3's token, restoring ubuntu@V1: another job),
``stolen`` (the restore token from another address than the one that first used it),
``none`` (no token).  Targets, as seen from pc1's and pc2's jobs: ``own`` = win11@V1,
``earlier`` = win11@V2 (committed before the jobs), ``later`` = win11@LATER (committed
after them), ``image`` = ubuntu@V1 (another image), ``candidate`` = win11@CANDIDATE (a
captured version committed before the jobs and not promoted)."""

from __future__ import annotations

import json
import os

import pytest
from http_kit import V1, V2, bearer, chunk_url, write_image

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.manifest import ZERO, Chunk, Disk
from appliance.http import create_app
from appliance.store import Store

API = "/api/client/v1"
LATER = "20991231T000000Z"
CANDIDATE = "20261125T120000Z"
SIZE = 64 * 1024
MACHINE = {"REMOTE_ADDR": "10.0.0.5"}
ELSEWHERE = {"REMOTE_ADDR": "10.0.0.66"}
KINDS = ["restore", "capture", "ended", "other", "stolen", "none"]
TARGETS = ["own", "earlier", "later", "image", "candidate"]

# Store reads: (endpoint, kind) → status per target (own, earlier, later, image,
# candidate).
STORE = """
manifest  restore   200 403 403 403 403
manifest  capture   200 200 403 403 200
manifest  ended     409 409 409 409 409
manifest  other     403 403 403 200 403
manifest  stolen    403 403 403 403 403
manifest  none      401 401 401 401 401
chunk     restore   200 403 403 403 403
chunk     capture   200 200 403 403 200
chunk     ended     409 409 409 409 409
chunk     other     403 403 403 200 403
chunk     stolen    403 403 403 403 403
chunk     none      401 401 401 401 401
head      restore   200 403 403 403 403
head      capture   200 200 403 403 200
head      ended     409 409 409 409 409
head      other     403 403 403 200 403
head      stolen    403 403 403 403 403
head      none      401 401 401 401 401
"""

# Capture calls that name a target's chunk: status per target; for ``missing`` a
# 200 is followed by whether the chunk (which the store has) was reported missing.
NAMING = """
missing   restore   403      403      403      403      403
missing   capture   200:no   200:no   200:yes  200:yes  200:no
missing   ended     409      409      409      409      409
missing   other     403      403      403      403      403
missing   stolen    403      403      403      403      403
missing   none      401      401      401      401      401
commit    restore   403      403      403      403      403
commit    capture   200      200      400      400      200
commit    ended     409      409      409      409      409
commit    other     403      403      403      403      403
commit    stolen    403      403      403      403      403
commit    none      401      401      401      401      401
"""

# Calls without a target: status per token kind (restore capture ended other stolen none).
CALLS = """
GET   /job                 200 200 409 200 403 401
POST  /state               200 200 409 200 403 401
POST  /progress            200 200 409 200 403 401
POST  /log                 200 200 409 200 403 401
POST  /failed              200 200 409 200 403 401
POST  /done                200 409 409 200 403 401
PUT   /capture/chunk       403 200 409 403 403 401
POST  /room/join           200 403 409 200 403 401
POST  /room/report         400 403 409 400 403 401
POST  /room/leave          400 403 409 400 403 401
GET   /after               200 403 409 200 403 401
GET   /identity/ssh-host-keys 403 403 409 403 403 401
POST  /facts               200 200 409 200 403 401
POST  /health              200 200 409 200 403 401
GET   /power               200 200 200 200 403 401
"""


def _rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.strip().splitlines()]


class World:
    def __init__(self, home) -> None:
        layout = Layout(home)
        self.versions = {
            "own": write_image(layout, "win11", V1),
            "earlier": write_image(layout, "win11", V2),
            "image": write_image(layout, "ubuntu", V1),
            "candidate": write_image(layout, "win11", CANDIDATE),
        }
        store = Store(layout)
        store.mark_path("win11", CANDIDATE, "candidate").touch()
        assert not store.is_promoted("win11", CANDIDATE)
        self.app = create_app(layout, plugins=False)
        f = self.facade = self.app.extensions["slate"]
        for n in (1, 2, 3, 4):
            f.inventory.add_host(f"aa:bb:cc:00:00:0{n}", f"pc{n}", actor="t")
        self.jobs = {
            "restore": f.jobs.restore("pc1", "win11@" + V1, actor="t"),
            "capture": f.jobs.capture("pc2", "win11", actor="t"),
            "other": f.jobs.restore("pc3", "ubuntu", actor="t"),
            "ended": f.jobs.restore("pc4", "win11@" + V1, actor="t"),
        }
        self.versions["later"] = write_image(layout, "win11", LATER)
        self.client = self.app.test_client()
        self.client.environ_base.update(MACHINE)
        for kind in ("restore", "capture", "other"):  # each machine has called in
            assert self.client.get(f"{API}/job", headers=self.headers(kind)).status_code == 200
        f.jobs.cancel(self.jobs["ended"].id, actor="t")

    def headers(self, kind: str) -> dict[str, str]:
        if kind == "none":
            return {}
        job = self.jobs["restore" if kind == "stolen" else kind]
        return bearer(self.facade.jobs.token(job.id))

    def env(self, kind: str) -> dict[str, str]:
        return ELSEWHERE if kind == "stolen" else MACHINE

    def send(self, kind: str, method: str, path: str, **kw) -> int:
        resp = self.client.open(
            path, method=method, headers=self.headers(kind), environ_base=self.env(kind), **kw
        )
        return int(resp.status_code)

    def state(self) -> list[tuple[str, str | None]]:
        return [(j.state, j.result_version) for j in self.facade.jobs.list_jobs(include_ended=True)]


@pytest.fixture
def world(home) -> World:
    return World(home)


def _manifest(digests: list[str]) -> bytes:
    chunks = (*(Chunk("hash", d) for d in digests), ZERO)
    disk = Disk(index=0, size=SIZE * len(chunks), chunk_size=SIZE, chunks=chunks)
    return json.dumps({"disks": [disk.to_dict()]}).encode()


STORE_CASES = [
    (row[0], row[1], target, int(code))
    for row in _rows(STORE)
    for target, code in zip(TARGETS, row[2:], strict=True)
]


@pytest.mark.parametrize(("endpoint", "kind", "target", "expected"), STORE_CASES)
def test_store_matrix(world, endpoint, kind, target, expected):
    image = world.versions[target]
    if endpoint == "manifest":
        status = world.send(kind, "GET", f"/store/manifests/{image.name}/{image.version}.json")
    else:
        method = "HEAD" if endpoint == "head" else "GET"
        status = world.send(kind, method, chunk_url(image.digests[0]))
    assert status == expected


NAMING_CASES = [
    (row[0], row[1], target, cell)
    for row in _rows(NAMING)
    for target, cell in zip(TARGETS, row[2:], strict=True)
]


@pytest.mark.parametrize(("endpoint", "kind", "target", "expected"), NAMING_CASES)
def test_naming_matrix(world, endpoint, kind, target, expected):
    digest = world.versions[target].digests[0]
    before = world.state()
    if endpoint == "missing":
        resp = world.client.post(
            f"{API}/capture/missing",
            json={"hashes": [digest]},
            headers=world.headers(kind),
            environ_base=world.env(kind),
        )
        got = str(resp.status_code)
        if resp.status_code == 200:
            got += ":yes" if resp.get_json()["missing"] == [digest] else ":no"
    else:
        got = str(world.send(kind, "POST", f"{API}/capture/commit", data=_manifest([digest])))
    assert got == expected
    if not got.startswith("200"):
        assert world.state() == before  # a refused call changes nothing


CALL_CASES = [
    (row[0], row[1], kind, int(code))
    for row in _rows(CALLS)
    for kind, code in zip(KINDS, row[2:], strict=True)
]
BODIES = {
    "/state": {"state": "running"},
    "/progress": {"phase": "writing", "done": 1, "total": 2, "rate": 1.0, "eta": 1.0},
    "/log": {"lines": ["hello"]},
    "/failed": {"reason": "test"},
    "/done": {"verified_bytes": 1},
    # Roomcast's seat calls: a restore job may join (here: no multicast, so "unicast");
    # reporting or leaving needs the session number a join answered (400 without).
    "/room/join": {},
    "/room/report": {},
    "/room/leave": {},
    # The machine's own calls (issue 14): hardware facts, disk health, power requests
    # (asked after the job ended too: a machine waiting in the boot environment).
    "/facts": {"facts": {"system_uuid": ""}},
    "/health": {"disks": []},
}


@pytest.mark.parametrize(("method", "path", "kind", "expected"), CALL_CASES)
def test_call_matrix(world, method, path, kind, expected):
    before = world.state()
    if path == "/capture/chunk":
        data = os.urandom(SIZE)
        status = world.send(
            kind, "PUT", f"{API}/capture/chunk/{hash_chunk(data)}", data=compress_chunk(data)
        )
    elif method == "GET":
        status = world.send(kind, "GET", API + path)
    else:
        status = world.send(kind, "POST", API + path, json=BODIES[path])
    assert status == expected
    if status >= 400:
        assert world.state() == before  # a refused call changes nothing


def test_tables_cover_every_client_and_store_route(world):
    tested = {"/job", "/state", "/progress", "/log", "/failed", "/done", "/capture/chunk"}
    tested |= {"/capture/missing", "/capture/commit"}
    found = set()
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith(API):
            found.add(rule.rule[len(API) :].replace("/<digest>", ""))
        elif rule.rule.startswith("/store/"):
            found.add(rule.rule)
    tested |= {"/store/manifests/<image>/<name>", "/store/chunks/<prefix>/<name>"}
    tested |= {"/room/join", "/room/report", "/room/leave"}
    tested |= {"/after"}  # post-restore hooks and kept partitions (issue 13)
    tested |= {"/facts", "/health", "/power"}
    tested |= {"/identity/ssh-host-keys"}  # over TLS only: tests/unit/test_http_ssh_keys.py
    assert found <= tested, "a client or store route has no row in the matrix"
