"""What `slate lab up` makes in a data directory and what `down` may remove: only its own
hosts (same MAC and name as recorded), never a technician's; its console login."""

from __future__ import annotations

import itertools
import stat
from collections.abc import Callable
from pathlib import Path

from appliance import db, users
from appliance.config import Layout
from appliance.jobs import Jobs
from appliance.lab import owned
from appliance.lab.owned import Planned, hosts_to_remove, plan_machines
from appliance.machines import Inventory


def _macs(*macs: str) -> Callable[[], str]:
    it = iter(macs)
    return lambda: next(it)


def _counter() -> Callable[[], str]:
    n = itertools.count(1)
    return lambda: f"52:54:00:00:00:{next(n):02x}"


def test_plan_names_machines_per_firmware_in_order() -> None:
    plan, skipped = plan_machines([("bios", 2), ("uefi", 1)], {}, _counter())
    assert plan == [
        Planned("lab-bios1", "bios", "52:54:00:00:00:01"),
        Planned("lab-bios2", "bios", "52:54:00:00:00:02"),
        Planned("lab-uefi1", "uefi", "52:54:00:00:00:03"),
    ]
    assert skipped == []


def test_plan_skips_names_and_macs_someone_else_registered() -> None:
    registered = {"lab-bios1": "52:54:00:00:00:01", "pc-7": "52:54:00:00:00:02"}
    plan, skipped = plan_machines([("bios", 2), ("uefi", 0)], registered, _counter())
    assert [p.name for p in plan] == ["lab-bios2", "lab-bios3"]
    assert [p.mac for p in plan] == ["52:54:00:00:00:03", "52:54:00:00:00:04"]
    assert skipped == ["lab-bios1"]


def test_plan_never_repeats_a_mac_it_drew() -> None:
    same = _macs("52:54:00:aa:00:01", "52:54:00:AA:00:01", "52:54:00:aa:00:02")
    plan, _ = plan_machines([("bios", 2)], {}, same)
    assert [p.mac for p in plan] == ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]


def test_remove_only_hosts_with_the_recorded_mac_and_name() -> None:
    created = [
        {"name": "lab-bios1", "mac": "52:54:00:00:00:01"},  # untouched: the lab's
        {"name": "lab-bios2", "mac": "52:54:00:00:00:02"},  # renamed: adopted, stays
        {"name": "lab-uefi1", "mac": "52:54:00:00:00:03"},  # removed by hand already
    ]
    registered = {
        "52:54:00:00:00:01": "lab-bios1",
        "52:54:00:00:00:02": "pc-12",
        "52:54:00:00:00:09": "lab-uefi1",  # someone's own machine under that name
    }
    remove, kept = hosts_to_remove(created, registered)
    assert remove == [{"name": "lab-bios1", "mac": "52:54:00:00:00:01"}]
    assert len(kept) == 1 and "pc-12" in kept[0] and "lab-bios2" in kept[0]


def _hosts(home: Path) -> dict[str, str]:
    conn = db.connect(Layout(home).db)
    try:
        return {h.name: h.mac for h in Inventory(conn).hosts()}
    finally:
        conn.close()


def test_register_then_remove_leaves_a_technicians_hosts_alone(tmp_path: Path) -> None:
    conn = db.connect(Layout(tmp_path).db)
    Inventory(conn).add_host("52:54:00:00:00:01", "lab-bios1", actor="cli")  # theirs
    conn.close()
    plan, skipped = owned.plan_for(tmp_path, [("bios", 1), ("uefi", 1)], _counter())
    assert skipped == ["lab-bios1"]
    created = owned.register(tmp_path, plan, "lab")
    assert _hosts(tmp_path) == {
        "lab-bios1": "52:54:00:00:00:01",
        "lab-bios2": "52:54:00:00:00:02",
        "lab-uefi1": "52:54:00:00:00:03",
    }
    conn = db.connect(Layout(tmp_path).db)
    job = Jobs(conn, Layout(tmp_path)).create("wipe", "lab-uefi1", actor="web:lab")
    conn.close()

    lines = owned.remove(tmp_path, created)

    assert _hosts(tmp_path) == {"lab-bios1": "52:54:00:00:00:01"}
    assert "removed host lab-bios2 (52:54:00:00:00:02)" in lines
    assert "removed host lab-uefi1 (52:54:00:00:00:03)" in lines, lines
    assert job.active  # an active job did not stop the lab from removing its host


def test_login_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = owned.ensure_login(tmp_path)
    assert first["user"] == "lab" and first["password"]
    path = tmp_path / owned.LOGIN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = db.connect(Layout(tmp_path).db)
    try:
        user = users.authenticate(conn, "lab", first["password"])
        assert user is not None and user.role == "admin"
    finally:
        conn.close()
    again = owned.ensure_login(tmp_path)
    assert again["password"] == first["password"]
    assert "password " + first["password"] in owned.describe_login(again)


def test_login_never_touches_a_lab_user_it_cannot_vouch_for(tmp_path: Path) -> None:
    conn = db.connect(Layout(tmp_path).db)
    users.add(conn, "lab", "viewer", "a technician's own", actor="cli")
    conn.close()
    login = owned.ensure_login(tmp_path)
    assert login["password"] is None and "left it alone" in login["note"]
    conn = db.connect(Layout(tmp_path).db)
    try:
        assert users.authenticate(conn, "lab", "a technician's own") is not None
        assert users.get(conn, "lab").role == "viewer"
    finally:
        conn.close()
    assert not (tmp_path / owned.LOGIN_FILE).exists()


def test_down_removes_the_hosts_its_state_file_records(tmp_path: Path) -> None:
    from appliance.lab import harness, steps

    plan, _ = owned.plan_for(tmp_path, [("bios", 1)], _counter())
    created = owned.register(tmp_path, plan, "lab")
    conn = db.connect(Layout(tmp_path).db)
    Inventory(conn).add_host("52:54:00:00:00:99", "pc-7", actor="cli")
    conn.close()
    state = {"prefix": "slt", "namespaces": [], "procs": [], "machines": [], "hosts": created}
    harness.save_state(tmp_path, state)

    steps.refuse_second_lab(tmp_path)  # nothing runs: clears the leftovers

    assert _hosts(tmp_path) == {"pc-7": "52:54:00:00:00:99"}
    assert not (tmp_path / harness.STATE_FILE).exists()


def test_register_is_all_or_nothing(tmp_path: Path) -> None:
    import pytest

    from appliance.errors import Conflict

    plan = [Planned("lab-bios1", "bios", "52:54:00:00:00:01"),
            Planned("lab-bios2", "bios", "52:54:00:00:00:01")]  # fmt: skip
    with pytest.raises(Conflict):
        owned.register(tmp_path, plan, "lab")
    assert _hosts(tmp_path) == {}
