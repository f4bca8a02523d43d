"""``slate notify …`` through the real CLI: add, list (--json, no secrets), test, log, rm,
and clear errors for bad input."""

from __future__ import annotations

import json

from appliance import db
from appliance.config import Layout
from appliance.notify import outbox


def test_add_list_test_rm(slate, home) -> None:
    out = slate("notify", "add-webhook", "https://hooks.example/x", "--secret", "s3cret",
                "--events", "failed,room-done", check=True).stdout  # fmt: skip
    assert "webhook 1 → https://hooks.example/x on failed,room-done" in out
    slate("notify", "add-email", "--to", "tech@example.org", "--smtp", "mail.example.org:587",
          "--user", "slate", "--password-stdin", "--starttls", input="mail-pw\n",
          check=True)  # fmt: skip
    listed = slate("notify", "list", "--json", check=True).stdout
    assert "s3cret" not in listed and "mail-pw" not in listed
    rows = json.loads(listed)
    assert [(r["id"], r["kind"], r["events"]) for r in rows] == [
        (1, "webhook", ["failed", "room-done"]),
        (2, "email", ["failed", "done", "room-done", "disk-refused", "forged-traffic"]),
    ]
    assert rows[1]["starttls"] is True and rows[1]["user"] == "slate"
    assert "test event queued" in slate("notify", "test", "1", check=True).stdout
    conn = db.connect(Layout(home).db)
    (item,) = outbox.due(conn)
    assert item.target.id == 1 and json.loads(item.body)["test"] is True
    assert outbox.targets(conn)[1].secret == "mail-pw"  # kept for SMTP login
    assert json.loads(slate("notify", "log", "--json", check=True).stdout) == []
    assert json.loads(slate("notify", "test", "1", "--json", check=True).stdout) == {
        "target": 1,
        "queued": 1,
    }
    added = slate("notify", "add-webhook", "http://10.0.0.9:8000/", "--secret", "x", "--json")
    assert json.loads(added.stdout)["id"] == 3 and "x" not in json.loads(added.stdout).values()
    assert json.loads(slate("notify", "rm", "3", "--json", check=True).stdout) == {"removed": 3}
    slate("notify", "rm", "1", check=True)
    assert [r["id"] for r in json.loads(slate("notify", "list", "--json").stdout)] == [2]


def test_bad_input_says_what_to_do(slate) -> None:
    bad = slate("notify", "add-webhook", "ftp://x", "--secret", "s")
    assert bad.returncode != 0 and "is not an http(s) URL" in bad.stderr
    assert "https://" in bad.stderr  # the hint
    bad = slate("notify", "add-webhook", "https://x/", "--secret", "s", "--events", "boom")
    assert bad.returncode != 0 and "unknown event 'boom'" in bad.stderr
    bad = slate("notify", "add-email", "--to", "tech@example.org", "--smtp", "mailhost")
    assert bad.returncode != 0 and "is not HOST:PORT" in bad.stderr
    bad = slate("notify", "rm", "9")
    assert bad.returncode != 0 and "no notification target 9" in bad.stderr
    for result in (bad,):
        assert "Traceback" not in result.stderr
