"""Inventory: MAC forms, hosts, rooms, standing rules, seen machines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance import db
from appliance.errors import Conflict, NotFound, UsageError
from appliance.machines import Inventory, normalize_mac, parse_image_spec


@pytest.fixture
def inv(tmp_path):
    return Inventory(db.connect(tmp_path / "slate.db"))


@pytest.mark.parametrize(
    "text",
    [
        "aa:bb:cc:dd:ee:0f",
        "AA:BB:CC:DD:EE:0F",
        "aa-bb-cc-dd-ee-0f",
        "AABB.CCDD.EE0F",
        "aabbccddee0f",
        " aa:bb:cc:dd:ee:f ",
        "aa:bb:cc:dd:ee:F",
    ],
)
def test_mac_forms(text):
    assert normalize_mac(text) == "aa:bb:cc:dd:ee:0f"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "gg:bb:cc:dd:ee:ff",
        "aabb.ccdd.eef",
        "aabbccddeef",
        "aa:bb:cc:dd:ee:fff",
        "aa::cc:dd:ee:ff",
        "../../etc",
    ],
)
def test_bad_macs(text):
    with pytest.raises(UsageError) as info:
        normalize_mac(text)
    assert info.value.hint


@given(st.binary(min_size=6, max_size=6))
def test_mac_round_trip(raw):
    canonical = ":".join(f"{b:02x}" for b in raw)
    assert normalize_mac(canonical.upper().replace(":", "-")) == canonical
    assert normalize_mac(raw.hex()) == canonical


def test_image_spec():
    assert parse_image_spec("win11") == ("win11", None)
    assert parse_image_spec("win11@20261125T100000Z") == ("win11", "20261125T100000Z")
    for bad in ("", "a/b", "..", "win11@latest", "win 11"):
        with pytest.raises(UsageError):
            parse_image_spec(bad)


def test_hosts_and_rooms(inv):
    h = inv.add_host("AA-BB-CC-00-00-01", "pc1", actor="t", room="lab1", ip="10.0.0.1")
    assert (h.mac, h.room, h.ip) == ("aa:bb:cc:00:00:01", "lab1", "10.0.0.1")
    assert inv.get_host("pc1") == inv.get_host("aabb.cc00.0001") == h
    with pytest.raises(Conflict):
        inv.add_host("aa:bb:cc:00:00:02", "pc1", actor="t")
    with pytest.raises(UsageError):
        inv.add_host("aa:bb:cc:00:00:02", "bad name", actor="t")
    assert inv.get_room("lab1").hosts == 1
    inv.remove_host("pc1", actor="t")
    with pytest.raises(NotFound):
        inv.get_host("pc1")
    actions = [r[0] for r in inv.conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["host.add", "host.rm"]


def test_auto_restore_host_overrides_room(inv):
    inv.add_room("lab1", actor="t", auto_restore="base")
    a = inv.add_host("aa:bb:cc:00:00:01", "a", actor="t", room="lab1")
    b = inv.add_host("aa:bb:cc:00:00:02", "b", actor="t", room="lab1", auto_restore="other")
    c = inv.add_host("aa:bb:cc:00:00:03", "c", actor="t")
    assert inv.auto_restore_for(a) == "base"
    assert inv.auto_restore_for(b) == "other"
    assert inv.auto_restore_for(c) is None
    inv.set_room_auto_restore("lab1", None, actor="t")
    assert inv.auto_restore_for(inv.get_host("a")) is None


def test_seen_keeps_first_and_counts(inv):
    first = inv.record_seen("aa:bb:cc:00:00:09", "bios", 0, "uuid-1", "10.0.0.9")
    again = inv.record_seen("AA:BB:CC:00:00:09")  # iPXE knows less: keep what we had
    assert again.first_seen == first.first_seen and again.boots == 2
    assert (again.firmware, again.arch, again.uuid, again.ip) == ("bios", 0, "uuid-1", "10.0.0.9")
    assert [s.mac for s in inv.seen()] == ["aa:bb:cc:00:00:09"]
    inv.add_host("aa:bb:cc:00:00:09", "pc9", actor="t")
    assert inv.seen() == []
    assert len(inv.seen(include_known=True)) == 1
    assert inv.get_host("pc9").firmware == "bios"


def test_csv_errors_name_lines(inv):
    with pytest.raises(UsageError) as info:
        inv.import_csv("aa:bb:cc:00:00:01,pc1\n", actor="t")
    assert "line 1" in info.value.message
    with pytest.raises(UsageError) as info:
        inv.import_csv("aa:bb:cc:00:00:01,pc1,r\naa:bb:cc:00:00:01,pc2,r\n", actor="t")
    assert "line 2" in info.value.message
    assert inv.hosts() == [] and inv.rooms() == []
