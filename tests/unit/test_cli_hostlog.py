"""``slate host timeline`` and ``slate host history`` through the real CLI."""

from __future__ import annotations

import csv
import io
import json

from http_kit import V1, write_image

from appliance import db
from appliance.config import Layout
from appliance.jobs import Jobs
from appliance.machines import timeline

MAC = "aa:bb:cc:00:00:01"


def _jobs(home) -> Jobs:
    layout = Layout(home)
    write_image(layout, "win11", V1)
    jobs = Jobs(db.connect(layout.db), layout)
    jobs.inventory.add_host(MAC, "pc1", actor="t")
    return jobs


def test_timeline_text_and_json(slate, home) -> None:
    jobs = _jobs(home)
    out = slate("host", "timeline", "pc1", check=True).stdout
    assert "no events for pc1 yet" in out
    timeline.record(jobs.conn, MAC, "dhcp-offer", "DHCP OFFER: bios, address 10.0.0.5",
                    firmware="bios", address="10.0.0.5")  # fmt: skip
    job = jobs.restore("pc1", "win11", actor="t")
    jobs.failed(job.id, "disk vanished")
    out = slate("host", "timeline", MAC, check=True).stdout
    assert "dhcp-offer" in out and f"job {job.id} failed: disk vanished" in out
    got = json.loads(slate("host", "timeline", "pc1", "--json", check=True).stdout)
    assert [e["kind"] for e in got] == ["dhcp-offer", "failed"]
    assert got[0]["facts"] == {"firmware": "bios", "address": "10.0.0.5"}
    slate("host", "rm", "pc1", check=True)  # its timeline goes with it
    assert timeline.events(jobs.conn, MAC) == []


def test_history_table_csv_json(slate, home) -> None:
    jobs = _jobs(home)
    job = jobs.restore("pc1", "win11", actor="t")
    jobs.transition(job.id, "running")
    jobs.done(job.id, verified_bytes=2 * 1024 * 1024)
    out = slate("host", "history", "pc1", check=True).stdout
    assert f"win11@{V1}" in out and "2.0 MiB" in out and "done" in out
    rows = list(csv.DictReader(io.StringIO(slate("host", "history", "pc1", "--csv").stdout)))
    assert [(r["job"], r["state"], r["bytes"]) for r in rows] == [(str(job.id), "done", "2097152")]
    assert rows[0]["started_at"] and rows[0]["duration_s"] != ""
    (row,) = json.loads(slate("host", "history", "pc1", "--json", check=True).stdout)
    assert row["version"] == V1 and row["duration_s"] >= 0


def test_an_unknown_host_says_how_to_find_it(slate, home) -> None:
    _jobs(home)
    for cmd in ("timeline", "history"):
        bad = slate("host", cmd, "nope")
        assert bad.returncode != 0 and "no host named or with MAC 'nope'" in bad.stderr
        assert "slate host list" in bad.stderr and "Traceback" not in bad.stderr
