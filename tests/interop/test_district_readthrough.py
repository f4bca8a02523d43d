"""Read-through restores (issue 30): a school's appliance restores a room from a version
it has not fetched, while the library is reachable, and with the WAN down it restores a
ready version with 0 WAN bytes and refuses a job for one that is not ready.

The school's appliance (``python -m appliance.http``, as in room_kit) runs in the
school's namespace of the district (its WAN, shaped by tbf, to the real SeaweedFS) and
has a second leg, ``lan0``, on a classroom's bridge where the seats are: real restore
clients, one namespace each.  WAN bytes are the school's WAN counters; the seats' LAN
traffic never crosses them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_kit import MIB, ROOT, change_chunks, make_disk
from district_kit import District
from district_room import room_seats, school_room

from appliance import db
from appliance.config import Layout
from appliance.jobs import Jobs
from appliance.machines import Inventory
from appliance.store import Store
from tests.conftest import require_root

WAN_MBIT = 50
SEATS = 8
IMAGE = "lab"


class School:
    def __init__(self, district: District, tmp: Path) -> None:
        self.district, self.home = district, tmp / "school1"
        self.home.mkdir()
        self.layout = Layout(self.home)

    def slate(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "appliance.cli", "--home", str(self.home), *argv]
        done = self.district.run_in("school1", cmd, cwd=str(ROOT))
        if check:
            assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
        return done


World = tuple[District, Path, School, Path, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_root()
    tmp = tmp_path_factory.mktemp("readthrough")
    district = District(tmp, schools=("hq", "school1"), wan_mbit=WAN_MBIT)
    try:
        hq = tmp / "hq"
        cli = [sys.executable, "-m", "appliance.cli", "--home", str(hq)]

        def at_hq(*argv: str) -> str:
            done = district.run_in("hq", [*cli, *argv], cwd=str(ROOT))
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        disk = tmp / "lab.img"
        make_disk(disk, 48 * MIB, seed=60, data_fraction=0.9)
        version = at_hq("image", "import", str(disk), "--name", IMAGE, "--format", "raw").strip()
        creds = str(district.credentials_file("publisher"))
        at_hq("library", "add", "district", "s3://library", "--endpoint", district.endpoint,
              "--credentials", creds, "--publisher")  # fmt: skip
        at_hq("library", "publish", f"{IMAGE}@{version}")
        fingerprint = json.loads(at_hq("library", "key", "--json"))["fingerprint"]
        school = School(district, tmp)
        school.slate("library", "add", "district", "s3://library", "--endpoint",
                     district.endpoint, "--credentials",
                     str(district.credentials_file("school1")), "--trust", fingerprint)  # fmt: skip
        yield district, hq, school, disk, version
    finally:
        district.close()


def test_a_cold_room_restores_a_version_the_school_never_fetched(
    world: World, tmp_path: Path
) -> None:
    district, hq, school, disk, version = world
    hq_store = Store(Layout(hq))
    manifest = hq_store.load(IMAGE, version)
    compressed = sum(hq_store.chunk_path(d).stat().st_size for d in manifest.digests())
    assert not Store(school.layout).manifest_path(IMAGE, version).exists()
    room = school_room(district, "school1", school.home, SEATS)
    try:
        before = district.wan_rx_bytes("school1")
        # The job is made while the library answers: its signed manifest is read, checked.
        school.slate("job", "restore", "--room", "lab1", "--image", f"{IMAGE}@{version}")
        room_seats(room, school.layout, tmp_path, disk.stat().st_size)
        assert len(room.seats) == SEATS
        room.app.start()
        room.start_together(room.seats)
        codes = room.wait_all(timeout=300)
        wan = district.wan_rx_bytes("school1") - before
        for seat, code in zip(room.seats, codes, strict=True):
            assert code == 0, f"{seat.name}: {seat.out[-2000:]}"
            assert seat.disk.read_bytes() == disk.read_bytes(), seat.name
        # Each chunk crossed the WAN once, however many seats asked for it.
        assert wan <= 1.05 * compressed, (wan, compressed)
        # The room went through roomcast: the sender sent what had arrived, the rest
        # followed as it came.
        jobs = Jobs(room.app.conn, school.layout)
        logs = ["\n".join(x["line"] for x in jobs.log_lines(s.job.id, 500)) for s in room.seats]
        assert any("roomcast: joined session" in log for log in logs), logs[0]
        took = max(s.seconds for s in room.seats)
        print(f"cold room of {SEATS}: WAN {wan / compressed:.3f} x the version's compressed"
              f" bytes ({compressed / MIB:.1f} MiB at {WAN_MBIT} Mbit/s ="
              f" {compressed * 8 / WAN_MBIT / 1e6:.1f} s), room done in {took:.1f} s")  # fmt: skip
    finally:
        room.close()
    # Whole now, and committed: an ordinary version of the school's store.
    rows = json.loads(school.slate("library", "versions", IMAGE, "--json").stdout)
    assert [(r["version"], r["state"]) for r in rows] == [(version, "ready")]
    school.slate("image", "verify", f"{IMAGE}@{version}")


def test_wan_down_a_ready_version_restores_and_one_not_ready_is_refused(
    world: World, tmp_path: Path
) -> None:
    district, hq, school, disk, version = world
    # v2 published, never fetched by the school.
    disk2 = tmp_path / "lab2.img"
    disk2.write_bytes(disk.read_bytes())
    change_chunks(disk2, 0.1, seed=61)
    cli = [sys.executable, "-m", "appliance.cli", "--home", str(hq)]
    v2 = district.run_in("hq", [*cli, "image", "import", str(disk2), "--name", IMAGE,
                                "--format", "raw"], cwd=str(ROOT)).stdout.strip()  # fmt: skip
    done = district.run_in("hq", [*cli, "library", "publish", f"{IMAGE}@{v2}"], cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    if not Store(school.layout).manifest_path(IMAGE, version).exists():
        school.slate("library", "fetch", f"{IMAGE}@{version}")
    district.link_down("school1")
    try:
        started = time.monotonic()
        refused = school.slate("job", "restore", "--host", "seat1", "--image",
                               f"{IMAGE}@{v2}", check=False)  # fmt: skip
        print(f"refused after {time.monotonic() - started:.1f} s: {refused.stderr.strip()}")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{IMAGE}@{v2} is not ready here, and a job for it needs the library" in (
            refused.stderr
        ), refused.stderr
        assert "Traceback" not in refused.stderr
        conn = db.connect(school.layout.db)
        seat1 = Inventory(conn).find_host("seat1")
        assert seat1 is None or Jobs(conn, school.layout).active_for(seat1.mac) is None
        conn.close()
        room = school_room(district, "school1", school.home, 1)
        try:
            before = district.wan_rx_bytes("school1")
            school.slate("job", "restore", "--host", "seat1", "--image", f"{IMAGE}@{version}")
            room_seats(room, school.layout, tmp_path, disk.stat().st_size)
            room.app.start()
            room.start_together(room.seats)
            assert room.wait_all(timeout=300) == [0], room.seats[0].out[-2000:]
            assert room.seats[0].disk.read_bytes() == disk.read_bytes()
            assert district.wan_rx_bytes("school1") - before < 20_000  # nothing but noise
        finally:
            room.close()
    finally:
        district.link_up("school1")
