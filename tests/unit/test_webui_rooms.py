"""The room view: every seat of a room with its job, the totals, and roomcast's part."""

from __future__ import annotations

import json

from test_webui_kit import MAC1, MAC2, MAC3, add_host, add_image, app, slate
from test_webui_kit import viewer as viewer

__all__ = ["app"]


def test_room_view_lists_every_seat_and_the_totals(app, viewer):
    add_image(app)
    add_host(app, MAC1, "pc1", room="lab-a")
    add_host(app, MAC2, "pc2", room="lab-a")
    add_host(app, MAC3, "pc3", room="lab-b")
    with app.app_context():
        jobs = slate(app).jobs
        j1 = jobs.restore("pc1", "win11", actor="t")
        jobs.transition(j1.id, "running")
        jobs.progress(j1.id, phase="restore", done=50, total=200, rate=10.0, eta=15.0)
        home = slate(app).layout.home
    # A session's status file as its sender keeps it: pc1 is a multicast seat.
    (home / "roomcast").mkdir()
    (home / "roomcast" / "0000abcd.json").write_text(
        json.dumps(
            {
                "transport": "multicast",
                "session": 0xABCD,
                "group": "239.255.83.1",
                "port": 5483,
                "rate": 90_000_000,
                "chunks": 3,
                "image": "win11",
                "version": j1.version,
                "sent_bytes": 4096,
                "sent_chunks": 1,
                "sent_repairs": 0,
                "ended": False,
                "seats": [
                    {
                        "job": j1.id,
                        "name": "pc1",
                        "transport": "multicast",
                        "why": "",
                        "catch": 0.99,
                        "mcast_bytes": 3 * 2**20,
                        "http_bytes": 0,
                    }
                ],
            }
        )
    )
    page = viewer.get("/rooms/lab-a")
    assert page.status_code == 200
    assert "pc1" in page.text and "pc2" in page.text and "pc3" not in page.text
    assert "<strong>1</strong> running" in page.text
    assert "Served by <strong>roomcast</strong>" in page.text
    assert "3.0 MiB multicast" in page.text
    st = viewer.get("/rooms/lab-a/status").get_json()
    assert st["totals"] == {"done": 0, "running": 1, "failed": 0, "waiting": 0, "idle": 1}
    seats = {s["host"]: s for s in st["seats"]}
    assert seats["pc1"]["percent"] == 25.0 and seats["pc1"]["roomcast"]["catch"] == 0.99
    assert seats["pc2"]["job"] is None and seats["pc2"]["roomcast"] is None
    assert viewer.get("/rooms/nope").status_code == 404


def test_dashboard_says_when_a_room_is_served_by_multicast(app, viewer):
    assert "Served by" not in viewer.get("/").text
    with app.app_context():
        home = slate(app).layout.home
    (home / "roomcast").mkdir()
    status = {"session": 1, "group": "239.255.83.1", "port": 5483, "rate": 36_000_000,
              "image": "win11", "version": "V1", "sent_bytes": 2**20, "ended": False,
              "seats": [{"job": 1, "name": "pc1", "transport": "multicast"},
                        {"job": 2, "name": "pc2", "transport": "http"}]}  # fmt: skip
    (home / "roomcast" / "00000001.json").write_text(json.dumps(status))
    page = " ".join(viewer.get("/").text.split())
    assert "Served by <strong>roomcast</strong>" in page
    assert "1 machine(s) by multicast, 1 by HTTP only, at 36 Mbit/s" in page
