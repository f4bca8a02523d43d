"""The district library (issue 30) against a real S3 engine (SeaweedFS, started by
district_kit in its own namespace): a publishing appliance ("hq") and a school's, each
in a namespace behind a WAN link shaped by tbf; the `slate` CLI runs in them as an
administrator would run it.  WAN bytes are the school's own link counters."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_kit import MIB, ROOT, change_chunks, make_disk
from district_kit import District

from appliance.config import Layout
from appliance.store import Store
from tests.conftest import require_root

WAN_MBIT = 50
IMAGE = "lab"


class Appliance:
    """One appliance's data directory, its CLI run inside its namespace."""

    def __init__(self, district: District, ns: str, home: Path) -> None:
        self.district, self.ns, self.home = district, ns, home
        self.layout = Layout(home)

    def slate(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "appliance.cli", "--home", str(self.home), *argv]
        done = self.district.run_in(self.ns, cmd, cwd=str(ROOT))
        if check:
            assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
        return done

    def json(self, *argv: str) -> object:
        return json.loads(self.slate(*argv, "--json").stdout)

    def store(self) -> Store:
        return Store(self.layout)

    def import_disk(self, path: Path) -> str:
        return self.slate(
            "image", "import", str(path), "--name", IMAGE, "--format", "raw"
        ).stdout.strip()

    def add_library(self, identity: str, *trust: str) -> None:
        creds = self.district.credentials_file(identity)
        self.slate("library", "add", "district", "s3://library", "--endpoint",
                   self.district.endpoint, "--credentials", str(creds), *trust)  # fmt: skip


World = tuple[District, "Appliance", "Appliance", Path]


def compressed(store: Store, digests: set[str] | frozenset[str]) -> int:
    return sum(store.chunk_path(d).stat().st_size for d in digests)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    require_root()
    tmp = tmp_path_factory.mktemp("district")
    district = District(tmp, schools=("hq", "school1"), wan_mbit=WAN_MBIT)
    try:
        hq = Appliance(district, "hq", tmp / "hq")
        school = Appliance(district, "school1", tmp / "school1")
        disk = tmp / "lab.img"
        make_disk(disk, 64 * MIB, seed=30, data_fraction=0.9)
        hq.add_library("publisher", "--publisher")
        fingerprint = str(hq.json("library", "key")["fingerprint"])  # type: ignore[index]
        school.add_library("school1", "--trust", fingerprint)
        yield district, hq, school, disk
    finally:
        district.close()


def test_publish_fetch_ready_then_a_changed_version_moves_only_its_new_chunks(
    world: World, tmp_path: Path
) -> None:
    district, hq, school, disk = world
    v1 = hq.import_disk(disk)
    published = hq.json("library", "publish", f"{IMAGE}@{v1}")
    hq_store = hq.store()
    m1 = hq_store.load(IMAGE, v1)
    assert published["moved"] == published["chunks"] == len(m1.digests())  # type: ignore[index]
    # Published again: nothing is uploaded twice.
    again = hq.json("library", "publish", f"{IMAGE}@{v1}")
    assert again["moved"] == 0  # type: ignore[index]

    rows = school.json("library", "versions", IMAGE)
    assert rows == [{"version": v1, "state": "absent", "have": 0, "chunks": None}]
    before = district.wan_rx_bytes("school1")
    got = school.json("library", "fetch", IMAGE)
    wan = district.wan_rx_bytes("school1") - before
    lacked = compressed(hq_store, m1.digests())
    assert got["ref"] == f"{IMAGE}@{v1}" and got["moved"] == len(m1.digests())  # type: ignore[index]
    assert wan <= 1.05 * lacked, (wan, lacked)
    rows = school.json("library", "versions", IMAGE)
    assert rows == [{"version": v1, "state": "ready", "have": len(m1.digests()),
                     "chunks": len(m1.digests())}]  # fmt: skip
    school.slate("image", "verify", f"{IMAGE}@{v1}")
    exported = tmp_path / "v1.img"
    school.slate("image", "export", f"{IMAGE}@{v1}", str(exported))
    assert exported.read_bytes() == disk.read_bytes()

    # v2: 5 % of the chunks changed.  Only they cross the WAN.
    disk2 = tmp_path / "lab2.img"
    shutil.copyfile(disk, disk2)
    change_chunks(disk2, 0.05, seed=31)
    v2 = hq.import_disk(disk2)
    m2 = hq_store.load(IMAGE, v2)
    new = m2.digests() - m1.digests()
    assert new
    published = hq.json("library", "publish", f"{IMAGE}@{v2}")
    assert published["moved"] == len(new)  # type: ignore[index]
    before = district.wan_rx_bytes("school1")
    got = school.json("library", "fetch", f"{IMAGE}@{v2}")
    wan = district.wan_rx_bytes("school1") - before
    assert got["moved"] == len(new)  # type: ignore[index]
    assert wan <= 1.05 * compressed(hq_store, new), (wan, compressed(hq_store, new))
    # A chunk lost at the school: v2 is no longer ready, counted from the store.
    victim = sorted(new)[0]
    school.store().chunk_path(victim).unlink()
    states = {r["version"]: r for r in school.json("library", "versions", IMAGE)}  # type: ignore[union-attr]
    assert states[v1]["state"] == "ready"
    assert states[v2]["state"] == "fetching"
    assert states[v2]["have"] == len(m2.digests()) - 1
    again = school.json("library", "fetch", f"{IMAGE}@{v2}")
    assert again["moved"] == 1  # type: ignore[index]
    states = {r["version"]: r for r in school.json("library", "versions", IMAGE)}  # type: ignore[union-attr]
    assert states[v2]["state"] == "ready"


def test_altered_unsigned_and_damaged_objects_and_a_school_writing_the_library(
    world: World, tmp_path: Path
) -> None:
    district, hq, school, disk = world
    ops = district.client("ops")
    disk3 = tmp_path / "lab3.img"
    shutil.copyfile(disk, disk3)
    change_chunks(disk3, 0.05, seed=32)
    v3 = hq.import_disk(disk3)
    hq.slate("library", "publish", f"{IMAGE}@{v3}")
    m3 = hq.store().load(IMAGE, v3)
    key = f"manifests/{IMAGE}/{v3}.json"
    good = ops.get_object(Bucket="library", Key=key)["Body"].read()
    signature = ops.get_object(Bucket="library", Key=f"manifests/{IMAGE}/{v3}.sig")["Body"].read()

    def refused(*expect: str) -> None:
        done = school.slate("library", "fetch", f"{IMAGE}@{v3}", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        for text in expect:
            assert text in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert not school.store().manifest_path(IMAGE, v3).exists()  # never half there

    # An altered manifest: a chunk of it pointed elsewhere.
    altered = good.replace(sorted(m3.digests())[0].encode(), sorted(m3.digests())[1].encode(), 1)
    assert altered != good
    ops.put_object(Bucket="library", Key=key, Body=altered)
    refused(f"{IMAGE}@{v3}: the manifest's signature does not verify under the pinned")
    # Unsigned.
    ops.put_object(Bucket="library", Key=key, Body=good)
    ops.delete_object(Bucket="library", Key=f"manifests/{IMAGE}/{v3}.sig")
    refused(f"{IMAGE}@{v3}: the manifest's signature is missing")
    ops.put_object(Bucket="library", Key=f"manifests/{IMAGE}/{v3}.sig", Body=signature)
    # A chunk whose bytes do not match its name: refused (read twice), not stored.
    school_store = school.store()
    lacking = sorted(d for d in m3.digests() if not school_store.has_chunk(d))
    assert lacking
    victim = lacking[0]
    chunk_key = f"chunks/{victim[:2]}/{victim}.zst"
    frame = ops.get_object(Bucket="library", Key=chunk_key)["Body"].read()
    other = hq.store().read_frame(sorted(m3.digests() - {victim})[0])
    ops.put_object(Bucket="library", Key=chunk_key, Body=other)
    refused(f"chunk {victim} in the library does not match its name")
    assert not school.store().has_chunk(victim)
    # The publisher's next publish sees the bytes differ (size or MD5) and puts them back.
    again = hq.json("library", "publish", f"{IMAGE}@{v3}")
    assert again["moved"] == 1  # type: ignore[index]
    assert ops.get_object(Bucket="library", Key=chunk_key)["Body"].read() == frame
    got = school.json("library", "fetch", f"{IMAGE}@{v3}")  # repaired: it completes
    assert got["ref"] == f"{IMAGE}@{v3}"  # type: ignore[index]
    school.slate("image", "verify", f"{IMAGE}@{v3}")

    # A school's key may read the library, never write it.
    creds = district.credentials_file("school1")
    # (another prefix of the library bucket, with no publisher yet: the key is what stops it)
    done = school.slate("library", "add", "mine", "s3://library/elsewhere", "--endpoint",
                        district.endpoint, "--credentials", str(creds), "--publisher",
                        check=False)  # fmt: skip
    assert done.returncode == 1
    assert "the library mine refused this appliance's credentials (AccessDenied)" in done.stderr, (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert [x["name"] for x in school.json("library", "list")] == ["district"]  # type: ignore[index,union-attr]
    # ... and a school cannot pin a key other than the library's publisher's.
    done = school.slate("library", "add", "wrong", "s3://library", "--endpoint",
                        district.endpoint, "--credentials", str(creds), "--trust", "SHA256:AAAA",
                        check=False)  # fmt: skip
    assert done.returncode == 1 and "not SHA256:AAAA; not added" in done.stderr, done.stderr


def test_subscription_waits_for_its_window_and_resumes_after_a_flap_a_kill_and_a_restart(
    world: World, tmp_path: Path
) -> None:
    district, hq, school, _disk = world
    other = tmp_path / "other.img"
    make_disk(other, 48 * MIB, seed=40, data_fraction=0.9)  # few chunks shared with "lab"
    name = "kiosk"
    version = hq.slate(
        "image", "import", str(other), "--name", name, "--format", "raw"
    ).stdout.strip()
    hq.slate("library", "publish", f"{name}@{version}")
    m = hq.store().load(name, version)

    # A window that is closed now: the sync does not even ask the library.
    hour = int(subprocess.run(["date", "+%H"], capture_output=True, text=True).stdout)
    closed = f"{(hour + 2) % 24:02}:00-{(hour + 3) % 24:02}:00"
    school.slate("library", "subscribe", name, "--window", closed, "--cap", "20M")
    before = district.wan_rx_bytes("school1")
    rows = school.json("library", "sync")
    assert rows == [{"library": "district", "image": name,
                     "result": f"waiting for its window {closed}"}]  # fmt: skip
    assert district.wan_rx_bytes("school1") - before < 20_000  # nothing but noise (ARP, ...)
    assert school.json("library", "versions", name)[0]["state"] == "absent"  # type: ignore[index]

    # Any time, capped at 8 Mbit/s, interrupted three times part-way — the WAN link
    # down for 3 s, the appliance's sync killed (-9), the engine restarted — then run
    # again: it completes, the WAN carried at most 1.05 x the version, and the version
    # is never visible half-fetched.
    school.slate("library", "subscribe", name, "--cap", "8M")
    before = district.wan_rx_bytes("school1")
    cmd = [sys.executable, "-m", "appliance.cli", "--home", str(school.home), "library", "sync"]
    store = school.store()

    def have() -> int:
        return sum(store.has_chunk(d) for d in m.digests())

    def sync_until(more: int) -> subprocess.Popen[str]:
        """A sync in the school, once ``more`` chunks more than now are stored."""
        want = have() + more
        proc = district.school("school1").popen(cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while have() < want:
            assert proc.poll() is None, "the fetch ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not store.manifest_path(name, version).exists()  # never half there
        return proc

    proc = sync_until(2)  # 1. a WAN flap: the same fetch goes on
    district.link_down("school1")
    time.sleep(3)
    district.link_up("school1")
    want = have() + 2
    deadline = time.monotonic() + 60
    while have() < want and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()  # 2. the appliance killed
    proc.wait()
    proc = sync_until(2)  # 3. the engine restarted under a running fetch
    district.stop_engine()
    district.start_engine()
    proc.wait(timeout=120)  # it may finish, or stop on the engine's absence
    assert have() < len(m.digests()) or store.manifest_path(name, version).exists()
    partial = school.json("library", "versions", name)[0]  # type: ignore[index]
    if partial["state"] != "ready":  # type: ignore[index]
        assert (partial["state"], partial["have"]) == ("fetching", have())  # type: ignore[index]
        assert not store.manifest_path(name, version).exists()
        rows = school.json("library", "sync")
        assert rows[0]["result"] == "fetched"  # type: ignore[index]
    wan = district.wan_rx_bytes("school1") - before
    assert wan <= 1.05 * compressed(hq.store(), m.digests()), wan
    assert school.json("library", "versions", name)[0]["state"] == "ready"  # type: ignore[index]
    school.slate("image", "verify", f"{name}@{version}")
    rows = school.json("library", "sync")  # nothing new: nothing read
    assert rows[0]["result"] == "ready"  # type: ignore[index]


def test_the_service_of_slate_serve_runs_the_subscriptions(world: World, tmp_path: Path) -> None:
    from appliance import db
    from appliance.district.service import LibrarySync

    district, hq, _school, _disk = world
    small = tmp_path / "svc.img"
    make_disk(small, 16 * MIB, seed=50, data_fraction=0.5)
    version = hq.slate(
        "image", "import", str(small), "--name", "svc", "--format", "raw"
    ).stdout.strip()
    hq.slate("library", "publish", f"svc@{version}")
    home = tmp_path / "school2"
    fingerprint = str(hq.json("library", "key")["fingerprint"])  # type: ignore[index]
    creds = district.credentials_file("school1")
    cli = [sys.executable, "-m", "appliance.cli", "--home", str(home), "library"]
    # This one reaches the engine from the test's own process, through the kit's relay.
    subprocess.run([*cli, "add", "district", "s3://library", "--endpoint",
                    district.host_endpoint, "--credentials", str(creds), "--trust", fingerprint],
                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    subprocess.run([*cli, "subscribe", "svc"], check=True, capture_output=True, cwd=ROOT)
    layout = Layout(home)
    sync = LibrarySync(layout, db.ThreadConnections(layout.db), interval=0.5)
    sync.start()
    try:
        deadline = time.monotonic() + 120
        store = Store(layout)
        while not store.version_ids("svc"):
            assert time.monotonic() < deadline, "the service fetched nothing"
            time.sleep(0.2)
    finally:
        sync.stop()
    assert store.version_ids("svc") == [version]  # whole: committed only when complete
    assert sync.passes >= 1
