"""The district view, retention in the bucket and a revoked key (issue 30), against a
real SeaweedFS (district_kit) with a publishing appliance ("hq", identity "publisher",
area s3://school-publisher) and three schools' appliances, the `slate` CLI run in their
namespaces.  school3's appliance never calls in.  No WAN shaping: no byte is counted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_kit import MIB, ROOT, change_chunks, make_disk
from district_kit import LIBRARY, District, school_bucket

from appliance.config import Layout
from appliance.store import Store
from tests.conftest import require_root

IMAGE = "lab"
SCHOOLS = ("school1", "school2", "school3")

# What a pass of `slate serve`'s library sync does, run in a school's namespace.
SERVICE_PASS = """
import sys
from pathlib import Path
from appliance import db
from appliance.config import Layout
from appliance.district.service import LibrarySync
layout = Layout(Path(sys.argv[1]))
LibrarySync(layout, db.ThreadConnections(layout.db), interval=60.0).run_once()
"""


class Appliance:
    """One appliance's data directory, its CLI run inside namespace ``ns``."""

    def __init__(self, district: District, ns: str, home: Path) -> None:
        self.district, self.ns, self.home = district, ns, home

    def slate(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "appliance.cli", "--home", str(self.home), *argv]
        done = self.district.run_in(self.ns, cmd, cwd=str(ROOT))
        if check:
            assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
        return done

    def json(self, *argv: str) -> Any:
        return json.loads(self.slate(*argv, "--json").stdout)

    def add_library(self, identity: str, area: str, *trust: str) -> None:
        creds = self.district.credentials_file(identity)
        self.slate("library", "add", "district", f"s3://{LIBRARY}", "--endpoint",
                   self.district.endpoint, "--credentials", str(creds), "--area", area,
                   *trust)  # fmt: skip

    def store(self) -> Store:
        return Store(Layout(self.home))


World = tuple[District, Appliance, Appliance, Appliance, str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_root()
    tmp = tmp_path_factory.mktemp("district-view")
    district = District(tmp, schools=("hq", *SCHOOLS), wan_mbit=None)
    try:
        hq = Appliance(district, "hq", tmp / "hq")
        s1 = Appliance(district, "school1", tmp / "school1")
        s2 = Appliance(district, "school2", tmp / "school2")
        hq.add_library("publisher", "s3://school-publisher", "--publisher")
        disk = tmp / "lab.img"
        make_disk(disk, 24 * MIB, seed=60, data_fraction=0.9)
        v1 = hq.slate(
            "image", "import", str(disk), "--name", IMAGE, "--format", "raw"
        ).stdout.strip()
        change_chunks(disk, 0.34, seed=61)  # 2 of the 6 chunks
        time.sleep(1 - time.time() % 1)  # v2's id in a later second (see sync.versions)
        v2 = hq.slate(
            "image", "import", str(disk), "--name", IMAGE, "--format", "raw"
        ).stdout.strip()
        for v in (v1, v2):
            hq.slate("library", "publish", f"{IMAGE}@{v}")
        fingerprint = str(hq.json("library", "key")["fingerprint"])
        for school in (s1, s2):
            school.add_library(school.ns, f"s3://{school_bucket(school.ns)}", "--trust",
                               fingerprint)  # fmt: skip
            school.slate("library", "subscribe", IMAGE)
        yield district, hq, s1, s2, v1, v2
    finally:
        district.close()


def test_each_appliance_writes_its_status_and_any_school_sees_the_whole_district(
    world: World,
) -> None:
    district, hq, s1, s2, v1, v2 = world
    adds = [a for s in SCHOOLS for a in ("--add", f"{s}=s3://{school_bucket(s)}")]
    roster = hq.json("library", "roster", "--add", "hq=s3://school-publisher", *adds)
    assert roster == {
        "hq": "s3://school-publisher",
        "school1": "s3://school-school1",
        "school2": "s3://school-school2",
        "school3": "s3://school-school3",
    }
    denied = s1.slate("library", "roster", "--add", "x=s3://school-x", check=False)
    assert denied.returncode == 1 and "is kept by its publisher" in denied.stderr, denied.stderr

    # school1: a pass of `slate serve`'s sync fetches v2 and writes the status.
    run = district.run_in("school1", [sys.executable, "-c", SERVICE_PASS, str(s1.home)],
                          cwd=str(ROOT))  # fmt: skip
    assert run.returncode == 0, run.stderr
    # school2 holds v1 only: behind.
    s2.slate("library", "fetch", f"{IMAGE}@{v1}")
    s2.slate("library", "status", "--write")
    seen_at_hq = hq.json("library", "status", "--write")  # its own status, then the district

    ops = district.client("ops")
    written = json.loads(ops.get_object(Bucket="school-school1", Key="status.json")["Body"].read())
    assert sorted(written) == ["area", "failures", "format", "free_bytes", "hostname", "images",
                               "publisher", "restores", "sync_interval", "written_at"]  # fmt: skip
    assert (written["format"], written["area"], written["publisher"]) == (
        "slate-status/1", "s3://school-school1", False)  # fmt: skip
    assert (written["sync_interval"], written["restores"], written["failures"]) == (60.0, [], [])
    assert written["free_bytes"] > 0
    assert written["images"][IMAGE]["library_newest"] == v2
    assert [(v["version"], v["state"]) for v in written["images"][IMAGE]["versions"]] == [
        (v1, "absent"), (v2, "ready")]  # fmt: skip

    for rows in (s1.json("library", "status"), seen_at_hq):  # a school and the publisher
        got = [(r["school"], r["called_in"], r["last_contact"] is not None, r["error"],
                {i: v["ready"] for i, v in r["images"].items()}, r["behind"], r["failures"])
               for r in rows]  # fmt: skip
        assert got == [
            ("hq", True, True, None, {IMAGE: v2}, [], 0),
            ("school1", True, True, None, {IMAGE: v2}, [], 0),
            ("school2", True, True, None, {IMAGE: v1}, [IMAGE], 0),
            ("school3", False, False, None, {}, [], 0),
        ]
    table = s1.slate("library", "status").stdout.splitlines()
    assert table[0].split() == ["SCHOOL", "LAST", "CONTACT", "CALLED", "IN", "NEWEST", "READY",
                                "BEHIND", "FAILURES"]  # fmt: skip
    assert table[-1].split() == ["school3", "never", "NO", "-", "-", "0"]


def test_prune_deletes_old_manifests_and_only_unnamed_chunks_past_the_grace(world: World) -> None:
    district, hq, _s1, _s2, v1, v2 = world
    ops = district.client("ops")

    def keys(prefix: str) -> list[str]:
        listed = ops.list_objects_v2(Bucket=LIBRARY, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    store = hq.store()
    m1, m2 = store.load(IMAGE, v1), store.load(IMAGE, v2)
    only_v1 = m1.digests() - m2.digests()
    assert only_v1
    chunks_before = keys("chunks/")
    hq.slate("image", "policy", IMAGE, "--keep-last", "1")

    dry = hq.json("library", "prune", "--dry-run")
    assert dry["removed"] == [f"{IMAGE}@{v1}"]
    assert dry["images"][IMAGE]["keep"] == {v2: ["last 1", "newest in the library"]}
    assert (dry["chunks_removed"], dry["chunks_kept_young"]) == ([], len(only_v1))
    assert keys(f"manifests/{IMAGE}/") == [f"manifests/{IMAGE}/{v}.{x}" for v in (v1, v2)
                                           for x in ("json", "sig")]  # fmt: skip

    # The default grace (48 h): v1's manifest and signature go, its own chunks stay.
    done = hq.json("library", "prune")
    assert done["removed"] == [f"{IMAGE}@{v1}"]
    assert (done["chunks_removed"], done["chunks_kept_young"]) == ([], len(only_v1))
    assert done["chunks_kept"] == len(m2.digests())
    assert keys(f"manifests/{IMAGE}/") == [f"manifests/{IMAGE}/{v2}.json",
                                           f"manifests/{IMAGE}/{v2}.sig"]  # fmt: skip
    assert keys("chunks/") == chunks_before

    # No grace: the chunks no manifest names go; every chunk v2 names stays.
    done = hq.json("library", "prune", "--grace", "0")
    assert done["removed"] == []
    assert sorted(done["chunks_removed"]) == sorted(only_v1)
    assert keys("chunks/") == sorted(f"chunks/{d[:2]}/{d}.zst" for d in m2.digests())


def test_a_school_writes_its_own_area_and_no_other(world: World) -> None:
    district, _hq, s1, _s2, _v1, _v2 = world
    ops = district.client("ops")

    def keys(bucket: str) -> list[str]:
        return sorted(o["Key"] for o in ops.list_objects_v2(Bucket=bucket).get("Contents", []))

    theirs = school_bucket("school2")
    before = keys(theirs)
    s1.slate("library", "area", "district", f"s3://{theirs}")  # pointed at another's area
    try:
        done = s1.slate("library", "status", "--write", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "the library district refused this appliance's credentials (AccessDenied)" in (
            done.stderr
        ), done.stderr
        assert "Traceback" not in done.stderr
        assert keys(theirs) == before  # nothing written there
    finally:
        s1.slate("library", "area", "district", f"s3://{school_bucket('school1')}")


def test_a_revoked_school_is_refused_and_stores_nothing(world: World) -> None:
    district, hq, _s1, s2, v1, v2 = world
    store = s2.store()
    only_v2 = hq.store().load(IMAGE, v2).digests() - store.load(IMAGE, v1).digests()
    assert only_v2 and not any(store.has_chunk(d) for d in only_v2)
    district.revoke("school2")
    done = s2.slate("library", "fetch", IMAGE, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the library district refused this appliance's credentials (InvalidAccessKeyId)" in (
        done.stderr
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert store.version_ids(IMAGE) == [v1]
    assert not store.manifest_path(IMAGE, v2).exists()
    assert not any(store.has_chunk(d) for d in only_v2)
