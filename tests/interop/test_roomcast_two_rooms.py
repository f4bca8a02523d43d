"""Two rooms restoring different images at once through one appliance whose own port is
shaped to the link its multicast budget is 90 % of (issue 29, "the appliance's link is
one budget"): the two sessions share the budget, so the appliance's transmit queue
drops nothing, every seat stays on multicast to the end, and every disk is its image
byte for byte."""

from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path

import pytest
from client_kit import MIB, make_disk
from room_kit import make_rooms

from appliance.lab.netns import Netns
from appliance.roomcast import read_status
from appliance.roomcast.link import parse_tc_drops
from tests.conftest import require_root

RATE = "45M"  # the multicast budget: 90 % of ...
LINK_MBIT = 50  # ... the appliance's port, shaped by tbf
SEATS = 3  # per room
MULTICAST = re.compile(r"roomcast: [1-9][\d,]* MiB by multicast")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_root()
    base = tmp_path_factory.mktemp("two_rooms")
    made = {}
    for seed, room in ((11, "lab1"), (12, "lab2")):  # different seeds: few chunks shared
        made[room] = base / f"{room}.img"
        make_disk(made[room], 48 * MIB, seed=seed, data_fraction=0.9)
    return made


def qdisc_drops(ns: Netns) -> int:
    out = ns.run(["tc", "-s", "-j", "qdisc", "show", "dev", "eth0"]).stdout
    drops = parse_tc_drops(out)
    assert drops is not None, out
    return drops


def test_two_rooms_share_the_link_and_nothing_is_dropped(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    room = make_rooms(tmp_path, images, SEATS, rate=RATE, srv_mbit=LINK_MBIT)
    try:
        srv = room.lab.hosts["srv"]
        before = qdisc_drops(srv)
        go = room.start_together(room.seats, loaded=True)
        codes = room.wait_all(timeout=120)
        times = {s.name: round(s.ended - go, 1) for s in room.seats}
        print("seconds from the go:", times)
        drops = qdisc_drops(srv) - before
        sessions = read_status(room.app.home)
        print("sessions:", json.dumps([
            {k: s.get(k) for k in ("image", "rate", "sent_bytes", "sent_repairs", "tx_drops")}
            for s in sessions
        ]))  # fmt: skip
        for seat, code in zip(room.seats, codes, strict=True):
            assert code == 0, f"{seat.name} exited {code}:\n{seat.out[-4000:]}"
            image = images[seat.name.split("-")[0]]
            assert filecmp.cmp(image, seat.disk, shallow=False), f"{seat.name}: disk differs"
            assert room.app.job(seat.job.id).state == "done", seat.name
            assert MULTICAST.search(seat.out), f"{seat.name}:\n{seat.out[-3000:]}"
            assert "going HTTP-only" not in seat.out, f"{seat.name}:\n{seat.out[-3000:]}"
        assert drops == 0, f"the appliance's port dropped {drops} packets"
        assert len(sessions) == 2 and {s["image"] for s in sessions} == {"lab1", "lab2"}
        for s in sessions:
            assert s["tx_drops"] == 0, s
            # Each ended at the whole budget: the other had ended first, or ended
            # together; while both ran each had half (not visible here once ended).
            assert s["rate"] in (45_000_000, 22_500_000), s["rate"]
    finally:
        room.close()
