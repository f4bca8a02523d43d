"""A school's classroom beside the district (issue 30's read-through test and
bench/district_bench.py): the school's namespace of district_kit gets a second leg,
``lan0``, on a classroom bridge (room_kit's Lab) where the seats are, and the school's
appliance (``python -m appliance.http``) is served on it.  The seats' LAN traffic never
crosses the school's WAN counters."""

from __future__ import annotations

from pathlib import Path

from client_kit import ServedHome
from district_kit import District
from room_kit import Room, SeatProc, link_of

from appliance import db
from appliance.config import Layout
from appliance.jobs import Jobs
from appliance.lab.netns import IP, Lab
from appliance.machines import Inventory

LAN = "10.83.0.1"


def school_room(
    district: District,
    school: str,
    home: Path,
    seats: int,
    *,
    seat_mbit: float | None = 100,
    rate: str = "90M",
    python: str | None = None,
) -> Room:
    """``school``'s appliance (data directory ``home``) served on its lan0, and
    ``seats`` seats (seat1, seat2, ... at most 200) of room lab1 on the classroom
    bridge, each port shaped to ``seat_mbit``."""
    layout = Layout(home)
    conn = db.connect(layout.db)
    if Inventory(conn).find_host("pc1") is not None:  # ServedHome adds it again
        Inventory(conn).remove_host("pc1", actor="test")
    conn.close()
    lab = Lab()
    try:
        ns = district.school(school)
        lab.attach(ns, "lan0", f"{LAN}/24")
        app = ServedHome(home, host=LAN, wrap=[IP, "netns", "exec", ns.name],
                         extra=["--multicast-rate", rate, *link_of(rate)])  # fmt: skip
    except BaseException:
        lab.close()
        raise
    room = Room(lab, app) if python is None else Room(lab, app, python=python)
    try:
        inv = Inventory(app.conn)
        if "lab1" not in {r.name for r in inv.rooms()}:
            inv.add_room("lab1", actor="test")
        for i in range(seats):
            name = f"seat{i + 1}"
            if inv.find_host(name) is None:
                inv.add_host(f"52:54:00:84:00:{i + 1:02x}", name, actor="test", room="lab1")
            lab.add_host(name, f"10.83.0.{10 + i}/24")  # up to 200 seats
            if seat_mbit:
                room.shape(name, seat_mbit)
    except BaseException:
        room.close()
        raise
    return room


def room_seats(room: Room, layout: Layout, tmp: Path, size: int) -> None:
    """The room's seats with an active job (made by `slate job restore --room lab1`
    at the school), each with a sparse target of ``size`` bytes."""
    jobs = Jobs(room.app.conn, layout)
    for name in sorted(room.lab.hosts):
        host = Inventory(room.app.conn).find_host(name)
        job = jobs.active_for(host.mac) if host is not None else None
        if job is None:
            continue
        disk = tmp / f"{job.host_name}.img"
        with disk.open("wb") as f:
            f.truncate(size)
        room.seats.append(SeatProc(job.host_name, room.lab.hosts[name], job,
                                   jobs.token(job.id), disk))  # fmt: skip
