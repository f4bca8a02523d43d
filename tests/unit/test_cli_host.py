"""`slate host …` and `slate room …` through the real CLI."""

from __future__ import annotations

import json


def test_add_list_rm_with_mac_forms(slate):
    assert (
        slate("host", "add", "AA-BB-CC-DD-EE-01", "--name", "pc1", "--room", "lab1").returncode == 0
    )
    assert (
        slate(
            "host", "add", "aabb.ccdd.ee02", "--name", "pc2", "--disk-hint", "serial=S2"
        ).returncode
        == 0
    )
    proc = slate("host", "list", "--json", check=True)
    hosts = {h["name"]: h for h in json.loads(proc.stdout)}
    assert hosts["pc1"]["mac"] == "aa:bb:cc:dd:ee:01" and hosts["pc1"]["room"] == "lab1"
    assert hosts["pc2"]["mac"] == "aa:bb:cc:dd:ee:02" and hosts["pc2"]["disk_hint"] == "serial=S2"
    table = slate("host", "list", check=True).stdout
    assert "pc1" in table and "aa:bb:cc:dd:ee:01" in table
    assert slate("host", "rm", "AA:BB:CC:DD:EE:02", check=True).stdout.startswith(
        "removed host pc2"
    )
    assert [h["name"] for h in json.loads(slate("host", "list", "--json").stdout)] == ["pc1"]
    rooms = json.loads(slate("room", "list", "--json", check=True).stdout)
    assert rooms == [{"name": "lab1", "note": "", "auto_restore": None, "hosts": 1, "after": None}]


def test_set_changes_name_room_address_and_hint(slate):
    slate("host", "add", "aa:bb:cc:dd:ee:11", "--name", "pc11", "--room", "lab1", check=True)
    slate("host", "add", "aa:bb:cc:dd:ee:12", "--name", "pc12", check=True)
    proc = slate(
        "host", "set", "pc11", "--name", "pc-11", "--room", "lab2", "--ip", "10.1.0.11",
        "--disk-hint", "serial=S11", "--json", check=True,
    )  # fmt: skip
    host = json.loads(proc.stdout)
    assert host["name"] == "pc-11" and host["room"] == "lab2"
    assert host["ip"] == "10.1.0.11" and host["disk_hint"] == "serial=S11"
    assert "lab2" in slate("room", "list", check=True).stdout
    out = slate("host", "set", "AA-BB-CC-DD-EE-11", "--room", "", "--ip", "", check=True).stdout
    assert out.startswith("host pc-11 (aa:bb:cc:dd:ee:11): room -, ip -, disk hint serial=S11")
    clash = slate("host", "set", "pc-11", "--name", "pc12")
    assert clash.returncode == 1 and "already used by aa:bb:cc:dd:ee:12" in clash.stderr
    nothing = slate("host", "set", "pc-11")
    assert nothing.returncode != 0 and "nothing to change" in nothing.stderr
    bad = slate("host", "set", "pc-11", "--disk-hint", "serial")
    assert bad.returncode == 1 and "hint: " in bad.stderr


def test_bad_mac_is_one_line_and_hint(slate):
    proc = slate("host", "add", "aa:bb:cc:dd:ee", "--name", "x")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "slate: error: 'aa:bb:cc:dd:ee' is not a MAC address"
    assert lines[1].startswith("hint: ") and len(lines) == 2


def test_duplicate_mac_refused(slate):
    slate("host", "add", "aa:bb:cc:dd:ee:01", "--name", "pc1", check=True)
    proc = slate("host", "add", "AABBCCDDEE01", "--name", "pc9")
    assert proc.returncode == 1 and "already registered" in proc.stderr


def test_import_csv_all_or_nothing(slate, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(
        "mac,name,room,ip\naa:bb:cc:00:00:01,pc1,lab1,10.0.0.11\naa-bb-cc-00-00-02,pc2,lab1\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("aa:bb:cc:00:00:03,pc3,lab2\nnot-a-mac,pc4,lab2\naa:bb:cc:00:00:05,pc3,lab2\n")
    proc = slate("host", "import-csv", str(bad))
    assert proc.returncode == 1
    assert "line 2" in proc.stderr and "line 3" in proc.stderr and "nothing imported" in proc.stderr
    assert json.loads(slate("host", "list", "--json").stdout) == []
    assert slate("host", "import-csv", str(good), check=True).stdout.startswith("imported 2 hosts")
    hosts = json.loads(slate("host", "list", "--json").stdout)
    assert [(h["name"], h["ip"]) for h in hosts] == [("pc1", "10.0.0.11"), ("pc2", None)]
    # Now pc1 exists: importing the bad file again still imports nothing.
    assert slate("host", "import-csv", str(bad)).returncode == 1
    assert len(json.loads(slate("host", "list", "--json").stdout)) == 2


def test_seen_lists_unknown_machines(slate, home):
    from appliance import db
    from appliance.machines import Inventory

    inv = Inventory(db.connect(home / "slate.db"))
    inv.record_seen("aa:bb:cc:00:00:09", "uefi", 7, ip="10.0.0.9")
    inv.record_seen("aa:bb:cc:00:00:09")
    seen = json.loads(slate("host", "seen", "--json", check=True).stdout)
    assert len(seen) == 1
    assert (seen[0]["mac"], seen[0]["firmware"], seen[0]["arch"], seen[0]["boots"]) == (
        "aa:bb:cc:00:00:09",
        "uefi",
        7,
        2,
    )
    slate("host", "add", "aa:bb:cc:00:00:09", "--name", "pc9", check=True)
    assert json.loads(slate("host", "seen", "--json").stdout) == []
    # ...and the host took the firmware the boot recorded.
    assert json.loads(slate("host", "list", "--json").stdout)[0]["firmware"] == "uefi"


def test_room_add_and_auto_restore(slate):
    assert slate("room", "add", "lab1", "--note", "B2").returncode == 0
    assert slate("room", "add", "lab1").returncode == 1
    assert slate("room", "set-auto-restore", "lab1", "win11@20261125T100000Z", check=True)
    assert slate("room", "set-auto-restore", "lab1", "bad name").returncode == 1
    rooms = json.loads(slate("room", "list", "--json").stdout)
    assert rooms[0]["auto_restore"] == "win11@20261125T100000Z"
    slate("room", "set-auto-restore", "lab1", "none", check=True)
    assert json.loads(slate("room", "list", "--json").stdout)[0]["auto_restore"] is None
    assert slate("room", "set-auto-restore", "nope", "win11").returncode == 1
