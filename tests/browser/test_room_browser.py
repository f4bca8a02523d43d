"""The room view in a real browser while a room of three restores (issue 14).

The console is open on the room's page before anything boots and is never reloaded:
every change arrives by the page's own polling.  Two tests, because the room view has two
sources: the jobs (state, phase, progress, rate) and roomcast's session status.

* By HTTP, against a real ``slate serve`` on loopback as in test_console_browser.py
  (whichever listener the console is on): one seat driven step by step through the client
  API (so "running, writing, 45 %" can be awaited), two real restore client processes at
  once, then the first seat fails.  ``--transport unicast``: loopback carries no multicast.
* Through roomcast, with the interop room kit (tests/interop/room_kit.py): the appliance
  in its namespace multicasts to three real seats in theirs; the console reads the same
  data directory on this machine's loopback.
(The lab's QEMU classroom, tests/lab/test_e2e_classroom.py, is left to its own
assertions: three TCG machines cost ~2 min more and another engineer edits that test.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.test_console_browser import CHUNK, ROOT, Served, boot, shot
from tests.browser.test_console_browser import page as page
from tests.browser.test_console_browser import server as server
from tests.conftest import require_root

ROOM = "lab-2"
# "multicast: 31.5 MiB multicast, 1.0 MiB HTTP" — some MiB (not 0 B) came by multicast
MULTICAST_BYTES = re.compile(r"multicast: [1-9][\d.]* MiB multicast")
FORTY_FIVE = re.compile(r"45(\.0)? %")  # "45.0 %" as first rendered, "45 %" once live
SEATS = {
    "pc-201": "52:54:00:20:00:01",
    "pc-202": "52:54:00:20:00:02",
    "pc-203": "52:54:00:20:00:03",
}


def _console(server: Served) -> str:
    """The console's address: its own (HTTPS) listener when the kit starts one."""
    return str(getattr(server, "console", server.url))


def _channel(server: Served) -> list[str]:
    """The client channel's flags: over TLS, pinned, when the kit starts that listener."""
    api, pin = getattr(server, "api", None), getattr(server, "pin", None)
    return ["--api", str(api), "--pin", str(pin)] if api and pin else []


class Seat:
    """A restore client driven one call at a time, as the real one speaks the API."""

    def __init__(self, server: Served, token: str) -> None:
        api, pin = getattr(server, "api", None), getattr(server, "pin", None)
        self.base = str(api or server.url) + "/api/client/v1"
        self.context = None
        if api and pin:
            from bootimage.client.api import pinned_context  # with the TLS channel only

            self.context = pinned_context(pin)
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=self.context) as resp:
            return json.loads(resp.read())

    def progress(self, done: int, total: int, phase: str) -> None:
        body = {"phase": phase, "done": done, "total": total, "rate": 48 * 1024 * 1024,
                "eta": (total - done) / 1e6}  # fmt: skip
        self.call("POST", "/progress", body)


def _log_in(page: Page, base: str) -> None:
    page.goto(base + "/login")
    page.fill("#name", "tina")
    page.fill("#password", "a long lab password")
    page.click("button:has-text('Log in')")
    expect(page.locator("h1")).to_have_text("Dashboard")


def _client(server: Served, job_id: int, token: str, disk: Path) -> subprocess.Popen[str]:
    args = ["--url", server.url, "--job", str(job_id), "--token", token, "--disk", str(disk),
            *_channel(server), "--after", "none", "--no-console"]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "bootimage.client", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_room_view_follows_a_room_of_three_restoring(
    server: Served, page: Page, slate: Any, tmp_path: Path
) -> None:
    for name, mac in SEATS.items():
        slate("host", "add", mac, "--name", name, "--room", ROOM, check=True)
    slate("job", "restore", "--room", ROOM, "--image", "win11-lab", "--transport", "unicast",
          check=True)  # fmt: skip
    _log_in(page, _console(server))
    page.goto(f"{_console(server)}/rooms/{ROOM}")
    totals = page.locator("#room-totals")
    expect(totals).to_contain_text("3 not yet booted")
    seat = {name: page.locator(f"#room-seats tr[data-host='{name}']") for name in SEATS}
    for row in seat.values():
        expect(row).to_contain_text("pending")
    shot(page, "20-room-waiting")

    # pc-201 boots; its client reports a step at a time.
    job1, token1 = boot(server.url, SEATS["pc-201"])
    one = Seat(server, token1)
    assert one.call("GET", "/job")["image"] == "win11-lab"
    total = 8 * CHUNK
    one.progress(total * 45 // 100, total, phase="writing")
    expect(seat["pc-201"]).to_contain_text("running")
    expect(seat["pc-201"]).to_contain_text("writing")
    expect(seat["pc-201"]).to_contain_text(FORTY_FIVE)
    expect(seat["pc-201"]).to_contain_text("48.0 MiB/s")
    expect(totals).to_contain_text("0 done · 1 running · 0 failed · 2 not yet booted")
    shot(page, "21-room-one-running")

    # pc-202 and pc-203 boot and restore with the real client, both at once.
    procs = []
    for name in ("pc-202", "pc-203"):
        job_id, token = boot(server.url, SEATS[name])
        disk = tmp_path / f"{name}.img"
        with open(disk, "wb") as fh:
            fh.truncate(8 * CHUNK)
        procs.append((name, job_id, disk, _client(server, job_id, token, disk)))
    for name, _job, _disk, proc in procs:
        try:
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, f"{name}:\n{out}"
    for name, job_id, disk, _ in procs:
        expect(seat[name]).to_contain_text("done")
        expect(seat[name]).to_contain_text(f"#{job_id}")
        data = disk.read_bytes()
        assert data[:CHUNK] == bytes([1]) * CHUNK and data[-CHUNK:] == bytes(CHUNK), name
    expect(totals).to_contain_text("2 done · 1 running · 0 failed · 0 not yet booted")
    expect(seat["pc-201"]).to_contain_text(FORTY_FIVE)  # still where it was
    shot(page, "22-room-two-done")

    # pc-201's disk gives out: the room ends with one failed seat, and says so.
    one.call("POST", "/failed", {"reason": "write error on vda at 14 MiB"})
    expect(seat["pc-201"]).to_contain_text("failed")
    expect(totals).to_contain_text("2 done · 0 running · 1 failed · 0 not yet booted")
    shot(page, "23-room-ended")
    assert job1 not in {j for _, j, _, _ in procs}


# -- the same room through roomcast, seats in namespaces ------------------------------------
def test_room_view_shows_the_roomcast_session_of_three_real_seats(
    page: Page, tmp_path: Path
) -> None:
    """The interop room kit (tests/interop/room_kit.py): the appliance in its namespace
    multicasts to three real restore clients, each in its own namespace on a snooping
    bridge.  The console (the same data directory, on this machine's loopback) shows
    the room: seats waiting, then the roomcast session and each seat's multicast bytes,
    then all three done."""
    require_root()
    sys.path.insert(0, str(ROOT / "tests" / "interop"))  # room_kit imports client_kit so
    from client_kit import MIB, make_disk
    from room_kit import make_room

    from appliance import users
    from appliance.config import Layout
    from appliance.http import create_app
    from appliance.http.server import HttpServer

    image = tmp_path / "master.img"
    make_disk(image, 48 * MIB, data_fraction=0.9)
    room = make_room(tmp_path, image, 3, rate="36M", seat_mbit=40)
    console = None
    try:
        users.add(room.app.conn, "tina", "technician", "a long lab password", "test")
        app = create_app(Layout(room.app.home))
        console = HttpServer(app, "127.0.0.1", 0)
        console.start()
        _log_in(page, console.url)
        page.goto(f"{console.url}/rooms/lab1")
        totals = page.locator("#room-totals")
        expect(totals).to_contain_text("3 not yet booted")
        for seat in room.seats:
            room.start(seat)
        expect(page.locator("#room-sessions")).to_contain_text("Served by roomcast (multicast)")
        shot(page, "24-roomcast-running")
        for seat in room.seats:
            assert room.wait(seat) == 0, f"{seat.name}:\n{seat.out[-3000:]}"
        expect(totals).to_contain_text("3 done · 0 running · 0 failed · 0 not yet booted")
        for seat in room.seats:
            row = page.locator(f"#room-seats tr[data-host='{seat.name}']")
            expect(row).to_contain_text("done")
            expect(row).to_contain_text(MULTICAST_BYTES)  # its bytes by multicast, not 0
        shot(page, "25-roomcast-done")
    finally:
        if console is not None:
            console.stop()
        room.close()
