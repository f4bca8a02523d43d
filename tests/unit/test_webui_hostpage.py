"""A machine's console page: its timeline and history, and the history as CSV."""

from __future__ import annotations

import csv
import io

from test_webui_kit import MAC1, add_host, add_image, slate
from test_webui_kit import app as app
from test_webui_kit import viewer as viewer

from appliance.machines import timeline


def test_machine_page_shows_timeline_and_history(app, viewer) -> None:
    add_host(app, MAC1, "pc1")
    image = add_image(app)
    with app.app_context():
        jobs = slate(app).jobs
        timeline.record(jobs.conn, MAC1, "dhcp-offer", "DHCP OFFER: uefi, address 10.0.0.5")
        job = jobs.restore("pc1", "win11", actor="t")
        jobs.transition(job.id, "running")
        jobs.failed(job.id, "disk <b>vanished</b>")
    page = viewer.get(f"/machines/{MAC1}").text
    assert "DHCP OFFER: uefi, address 10.0.0.5" in page
    assert page.index(f"job {job.id} failed") < page.index("DHCP OFFER")  # newest first
    assert f"win11@{image.version}" in page
    assert "disk &lt;b&gt;vanished&lt;/b&gt;" in page  # escaped
    assert f'href="/machines/{MAC1}/history.csv"' in page
    assert f'href="/machines/{MAC1}/hardware"' in page
    assert f'href="/machines/{MAC1}"' in viewer.get("/machines").text  # linked from the list
    resp = viewer.get(f"/machines/{MAC1}/history.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert 'filename="pc1-history.csv"' in resp.headers["Content-Disposition"]
    (row,) = csv.DictReader(io.StringIO(resp.text))
    assert row["job"] == str(job.id) and row["state"] == "failed"
    assert row["version"] == image.version


def test_an_unknown_machine_is_a_404_with_the_reason(viewer) -> None:
    resp = viewer.get("/machines/aa:bb:cc:dd:ee:ff")
    assert resp.status_code == 404 and "no host named or with MAC" in resp.text
    assert viewer.get("/machines/nope/history.csv").status_code == 404
