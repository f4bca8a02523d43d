"""Fuzzing the client API and the store (hypothesis): random and mutated methods,
paths, headers and bodies, with real tokens among them.  Whatever arrives, no answer is
a server error, and a refused call (4xx) changes nothing: no job moves, no chunk,
manifest or upload record appears.  (Refusals are *logged* on purpose: a job-log line
and a counter for a token used from another address; those are left out of the
comparison.)"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from http_kit import V1, write_image
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.names import chunk_relpath
from appliance.http import create_app
from appliance.jobs import testing as job_rows

API = "/api/client/v1"
MACHINE = "10.0.0.5"


class World:
    def __init__(self, home: Path) -> None:
        self.home = home
        layout = Layout(home)
        self.image = write_image(layout, "win11", V1)
        self.app = create_app(layout, plugins=False)
        f = self.facade = self.app.extensions["slate"]
        for n in (1, 2, 3):
            f.inventory.add_host(f"aa:bb:cc:00:00:0{n}", f"pc{n}", actor="t")
        restore = f.jobs.restore("pc1", "win11", actor="t")
        capture = f.jobs.capture("pc2", "win11", actor="t")
        ended = f.jobs.restore("pc3", "win11", actor="t")
        f.jobs.cancel(ended.id, actor="t")
        self.tokens = [f.jobs.token(j.id) for j in (restore, capture, ended)]
        self.client = self.app.test_client()

    def snapshot(self) -> Any:
        conn = self.facade.db()
        fields = "id state result_version client_addr phase bytes_done bytes_total"
        fields += " verified_bytes reason"
        jobs = [tuple(r) for r in job_rows.rows(conn, *fields.split())]
        uploads = conn.execute("SELECT job, digest FROM capture_uploads ORDER BY 1, 2").fetchall()
        logs = conn.execute(
            "SELECT job, line FROM job_log WHERE line NOT LIKE 'WARNING: refused%'"
            " AND line NOT LIKE '%refused%' ORDER BY id"
        ).fetchall()
        store = self.home / "store"
        files = sorted(
            str(p.relative_to(store))
            for sub in ("chunks", "manifests")
            for p in (store / sub).rglob("*")
            if p.is_file()
        )
        return (
            [tuple(r) for r in jobs],
            [tuple(r) for r in uploads],
            [tuple(r) for r in logs],
            files,
        )

    def ended(self) -> bool:
        return any(
            j.state in ("done", "failed") for j in self.facade.jobs.list_jobs(include_ended=True)
        )


_WORLD: dict[str, World] = {}


def world(tmp_root: Path) -> World:
    w = _WORLD.get("w")
    if w is None or w.ended():  # a fuzzed call may validly end a job: start again
        n = len(list(tmp_root.iterdir()))
        home = tmp_root / f"home{n}"
        home.mkdir()
        w = _WORLD["w"] = World(home)
    return w


HEX = "0123456789abcdef"
digests = st.text(HEX, min_size=64, max_size=64)
segments = st.one_of(
    st.sampled_from(["..", ".", "%2e%2e", "%2F", "win11", V1, f"{V1}.json", "ubuntu", ""]),
    st.text(string.ascii_letters + string.digits + "._-%", max_size=20),
    digests,
    digests.map(lambda d: f"{d}.zst"),
)
KNOWN = [
    f"{API}/job",
    f"{API}/state",
    f"{API}/progress",
    f"{API}/log",
    f"{API}/done",
    f"{API}/failed",
    f"{API}/capture/missing",
    f"{API}/capture/commit",
    f"{API}/capture/chunk/",
    "/store/manifests/win11/",
    "/store/chunks/",
    f"/store/manifests/win11/{V1}.json",
]
EXACT = [p for p in KNOWN if not p.endswith("/")]
paths = st.one_of(
    st.sampled_from(EXACT),
    st.sampled_from(EXACT),
    st.sampled_from(EXACT),
    st.sampled_from(EXACT),
    st.sampled_from(KNOWN),
    st.builds(lambda a, b: a + b, st.sampled_from(KNOWN), segments),
    st.builds(
        lambda a, b, c: f"{a}{b}/{c}",
        st.sampled_from(["/store/chunks/", "/store/manifests/"]),
        segments,
        segments,
    ),
    st.lists(segments, max_size=5).map(lambda s: "/x/" + "/".join(s)),
)


def _method_for(path: str) -> str:
    if path.startswith("/store/"):
        return "GET"
    if path.endswith("/job"):
        return "GET"
    if "/capture/chunk/" in path:
        return "PUT"
    return "POST"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
shaped = st.one_of(
    st.fixed_dictionaries({"state": json_values}),
    st.fixed_dictionaries({"hashes": st.one_of(st.lists(digests, max_size=5), json_values)}),
    st.fixed_dictionaries(
        {"lines": st.one_of(st.lists(st.text(max_size=30), max_size=5), json_values)}
    ),
    st.fixed_dictionaries(
        {
            "phase": json_values,
            "done": json_values,
            "total": json_values,
            "rate": json_values,
            "eta": json_values,
        }
    ),
    st.fixed_dictionaries({"verified_bytes": json_values}),
    st.fixed_dictionaries({"reason": json_values}),
    st.fixed_dictionaries({"disks": json_values}),
)
header_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=80
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    path = draw(paths)
    method = draw(
        st.one_of(
            st.just(_method_for(path)),
            st.just(_method_for(path)),
            st.just(_method_for(path)),
            st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH"]),
        )
    )
    auth = draw(
        st.one_of(
            st.sampled_from(["token:0", "token:1", "token:2"]),
            st.sampled_from(["token:0", "token:1", "token:2"]),
            st.sampled_from(["token:0", "token:1", "token:2", "none"]),
            header_text.map(lambda t: "raw:" + t),
            header_text.map(lambda t: "raw:Bearer " + t),
        )
    )
    body_kind = draw(st.sampled_from(["none", "bytes", "json", "shaped", "chunk"]))
    body: bytes | None = None
    if body_kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif body_kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif body_kind == "shaped":
        body = json.dumps(draw(shaped)).encode()
    elif body_kind == "chunk":
        data = draw(st.binary(min_size=1, max_size=200))
        body = compress_chunk(data)
        if draw(st.booleans()):
            path = f"{API}/capture/chunk/{hash_chunk(data)}"
    headers = {}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.one_of(
                st.sampled_from(["application/json", "application/zstd", "text/plain"]), header_text
            )
        )
    if draw(st.booleans()):
        headers[
            draw(st.sampled_from(["X-Forwarded-For", "Range", "If-None-Match", "X-Real-IP"]))
        ] = draw(header_text)
    address = draw(st.sampled_from([MACHINE, MACHINE, MACHINE, "10.0.0.66", "::1"]))
    return {
        "method": method,
        "path": path,
        "auth": auth,
        "body": body,
        "headers": headers,
        "addr": address,
    }


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(req=requests())
def test_client_api_fuzz_no_500_and_refusals_change_nothing(tmp_path_factory, req):
    w = world(tmp_path_factory.getbasetemp())
    headers = dict(req["headers"])
    if req["auth"].startswith("token:"):
        headers["Authorization"] = "Bearer " + w.tokens[int(req["auth"][6:])]
    elif req["auth"].startswith("raw:"):
        headers["Authorization"] = req["auth"][4:]
    before = w.snapshot()
    resp = w.client.open(
        req["path"],
        method=req["method"],
        data=req["body"],
        headers=headers,
        environ_base={"REMOTE_ADDR": req["addr"]},
    )
    status = resp.status_code
    resp.close()
    event(f"status {status}")
    assert status < 500, (req, resp.get_data()[:300])
    if status >= 400:
        assert w.snapshot() == before, req


def test_fuzz_world_paths_are_real():
    # The strategies above aim at real routes: a sanity check that they exist.
    assert chunk_relpath("ab" * 32).startswith("chunks/ab/")
