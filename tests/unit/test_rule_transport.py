"""A restore-every-boot rule's transport: kept per host and per room, given to the job a
boot creates, shown by the CLI and audited."""

from __future__ import annotations

import pytest
from http_kit import V1, write_image

from appliance.audit import recent
from appliance.config import Layout
from appliance.errors import UsageError
from appliance.http import create_app
from appliance.settings import Settings

MAC = "aa:bb:cc:00:00:01"
MAC2 = "aa:bb:cc:00:00:02"


def make(home):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    app = create_app(layout, Settings(unknown="silent"), plugins=False)
    return app.test_client(), app.extensions["slate"]


def test_the_boot_gives_the_rules_transport_to_its_job(home):
    client, facade = make(home)
    inv = facade.inventory
    inv.add_room("lab1", actor="t")
    inv.set_room_auto_restore("lab1", "win11", actor="t", transport="multicast")
    inv.add_host(MAC, "pc1", actor="t", room="lab1")
    inv.add_host(MAC2, "pc2", actor="t", room="lab1")
    inv.set_host_auto_restore("pc2", "win11", actor="t", transport="unicast")
    for mac in (MAC, MAC2):
        assert "kernel" in client.get(f"/boot/{mac}.ipxe").get_data(as_text=True)
    jobs = {j.host_name: j for j in facade.jobs.list_jobs()}
    assert jobs["pc1"].options["transport"] == "multicast"  # the room's rule
    assert jobs["pc2"].options["transport"] == "unicast"  # the host's own rule wins
    log = "\n".join(x["line"] for x in facade.jobs.log_lines(jobs["pc1"].id))
    assert "restore win11 at every boot' (transport multicast)" in log


def test_a_rule_without_a_transport_is_auto(home):
    client, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t", auto_restore="win11")
    client.get(f"/boot/{MAC}.ipxe")
    (job,) = facade.jobs.list_jobs()
    assert job.options["transport"] == "auto"
    assert facade.inventory.auto_transport_for(facade.inventory.get_host(MAC)) == "auto"


def test_an_unknown_transport_is_refused_with_the_choices(home):
    _, facade = make(home)
    facade.inventory.add_room("lab1", actor="t")
    with pytest.raises(UsageError) as err:
        facade.inventory.set_room_auto_restore("lab1", "win11", actor="t", transport="udp")
    assert "transport 'udp' is not known" in err.value.message
    assert "multicast" in (err.value.hint or "")


def test_cli_sets_and_says_the_transport(slate):
    slate("room", "add", "lab1", check=True)
    out = slate("room", "set-auto-restore", "lab1", "win11", "--transport", "multicast").stdout
    assert out.strip() == "room lab1: restore win11 at every boot, by multicast"
    out = slate("room", "set-auto-restore", "lab1", "win11").stdout
    assert out.strip() == "room lab1: restore win11 at every boot"
    bad = slate("room", "set-auto-restore", "lab1", "win11", "--transport", "udp")
    assert bad.returncode == 2 and "invalid choice: 'udp'" in bad.stderr
    slate("host", "add", MAC, "--name", "pc1", check=True)
    out = slate("host", "set-auto-restore", "pc1", "win11", "--transport", "unicast").stdout
    assert out.strip() == "host pc1: restore win11 at every boot, by unicast"


def test_the_audit_says_the_transport(home):
    _, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="tech", auto_restore=None)
    facade.inventory.set_host_auto_restore("pc1", "win11", actor="tech", transport="unicast")
    facade.inventory.set_host_auto_restore("pc1", "win11", actor="tech")
    rows = [tuple(r) for r in recent(facade.inventory.conn)]
    details = [r for r in rows if "host.auto_restore" in r]
    assert any("win11 (transport unicast)" in r for r in details), details
    assert any("win11" in r and "transport" not in str(r) for r in details), details
