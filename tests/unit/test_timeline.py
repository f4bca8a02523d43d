"""The per-machine timeline through the real HTTP app (boot script, boot environment,
client call, first chunk, phases, end) and the per-machine history with its CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from http_kit import V1, bearer, chunk_url, write_image

from appliance.config import Layout
from appliance.http import create_app
from appliance.jobs import testing as job_rows
from appliance.machines import history, timeline

MAC = "aa:bb:cc:00:00:01"
IP = "10.0.0.5"


def _app(home: Path):
    layout = Layout(home)
    image = write_image(layout, "win11", V1)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host(MAC, "pc1", actor="test", ip=IP)
    return app, facade, image


def test_one_boot_in_order(home: Path) -> None:
    app, facade, image = _app(home)
    job = facade.jobs.restore("pc1", "win11", actor="test")
    token = facade.jobs.token(job.id)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = IP
    assert client.get(f"/boot/{MAC}.ipxe?platform=pcbios").status_code == 200
    client.get("/bootenv/vmlinuz")  # recorded whether or not this home has the files built
    assert client.get("/api/client/v1/job", headers=bearer(token)).status_code == 200
    for digest in image.digests[:2]:  # the first chunk is recorded once
        assert client.get(chunk_url(digest), headers=bearer(token)).status_code == 200
    for phase in ("partitioning", "restoring", "restoring", "verifying"):
        body = {"phase": phase, "done": 1, "total": 2}
        assert client.post(
            "/api/client/v1/progress", json=body, headers=bearer(token)
        ).status_code in (200, 429)
    facade.jobs.failed(job.id, "chunk 7 did not verify")
    got = timeline.events(facade.db(), MAC)
    assert [e["kind"] for e in got] == [
        "boot-script",
        "bootenv",
        "client-call",
        "first-chunk",
        "phase",
        "phase",
        "phase",
        "failed",
    ]
    script, bootenv, call, chunk, *phases, end = got
    assert script["facts"]["decision"] == "job" and script["job"] == job.id
    assert script["detail"] == f"boot script: job {job.id} (restore)"
    assert bootenv["facts"] == {"file": "vmlinuz", "address": IP}
    assert call["job"] == chunk["job"] == job.id
    assert [p["facts"]["phase"] for p in phases] == ["partitioning", "restoring", "verifying"]
    assert end["facts"]["reason"] == "chunk 7 did not verify"
    assert end["detail"] == f"job {job.id} failed: chunk 7 did not verify"


def test_the_decision_local_and_unknown(home: Path) -> None:
    app, facade, _ = _app(home)
    client = app.test_client()
    client.get(f"/boot/{MAC}.ipxe")
    client.get("/boot/aa:bb:cc:00:00:99.ipxe")
    (local,) = timeline.events(facade.db(), MAC)
    assert (
        local["facts"]["decision"] == "local" and local["detail"] == "boot script: the local disk"
    )
    (unknown,) = timeline.events(facade.db(), "aa:bb:cc:00:00:99")
    assert unknown["facts"]["decision"] == "unknown"


def test_bounded_per_machine(home: Path) -> None:
    _, facade, _ = _app(home)
    conn = facade.db()
    for i in range(timeline.KEEP + 7):
        timeline.record(conn, MAC, "tftp", f"n{i}", file="undionly.kpxe")
    timeline.record(conn, "aa:bb:cc:00:00:02", "tftp", "other")
    got = timeline.events(conn, MAC, limit=1000)
    assert len(got) == timeline.KEEP
    assert got[0]["detail"] == "n7" and got[-1]["detail"] == f"n{timeline.KEEP + 6}"
    assert len(timeline.events(conn, "aa:bb:cc:00:00:02")) == 1


def test_mac_for_ip_from_a_lease_the_neighbour_table_or_the_host(
    home: Path, tmp_path: Path
) -> None:
    _, facade, _ = _app(home)
    conn = facade.db()
    conn.execute(
        "INSERT INTO leases(ip, mac, state, expires) VALUES (?, ?, 'bound', 9e9)",
        ("10.0.0.9", "aa:bb:cc:00:00:09"),
    )
    assert timeline.mac_for_ip(conn, "10.0.0.9") == "aa:bb:cc:00:00:09"
    assert timeline.mac_for_ip(conn, IP) == MAC  # the host's recorded address
    assert timeline.mac_for_ip(conn, None) is None
    arp = tmp_path / "arp"
    arp.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.0.0.7         0x1         0x2         52:54:00:AB:CD:EF     *        eth0\n"
        "10.0.0.8         0x1         0x0         00:00:00:00:00:00     *        eth0\n"
    )
    assert timeline._neighbour("10.0.0.7", arp) == "52:54:00:ab:cd:ef"
    assert timeline._neighbour("10.0.0.8", arp) is None  # incomplete


def test_history_with_duration_bytes_result_and_csv(home: Path) -> None:
    _, facade, _ = _app(home)
    jobs = facade.jobs
    one = jobs.restore("pc1", "win11", actor="test")
    jobs.transition(one.id, "running")
    conn = facade.db()
    job_rows.set_stamps(conn, one.id, started_at="2026-12-01T10:00:00Z")
    jobs.done(one.id, verified_bytes=3 * 1024 * 1024)
    job_rows.set_stamps(conn, one.id, finished_at="2026-12-01T10:01:30Z")
    two = jobs.restore("pc1", "win11", actor="test")
    jobs.failed(two.id, '=HYPERLINK("http://x")')
    rows = history.host_history(conn, MAC)
    assert [(r["job"], r["state"], r["version"]) for r in rows] == [
        (one.id, "done", V1),
        (two.id, "failed", V1),
    ]
    assert rows[0]["duration_s"] == 90 and rows[0]["bytes"] == 3 * 1024 * 1024
    assert rows[1]["duration_s"] is None  # it never ran
    text = history.to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == list(history.FIELDS)
    assert parsed[0]["duration_s"] == "90" and parsed[1]["duration_s"] == ""
    assert parsed[1]["reason"].startswith("'=HYPERLINK")  # no formula for a spreadsheet


def test_dhcp_answers_and_tftp_reads_reach_the_timeline(home: Path) -> None:
    from ipaddress import IPv4Address

    from appliance.dhcp import options as o
    from appliance.dhcp.craft import request
    from appliance.dhcp.decide import BootTarget
    from appliance.dhcp.leases import Pool
    from appliance.dhcp.packet import build, parse
    from appliance.dhcp.server import DhcpServer
    from appliance.server import Appliance
    from appliance.settings import Settings

    _, facade, _ = _app(home)
    appliance = Appliance(Layout(home), Settings())
    pool = Pool.parse("10.0.0.100-10.0.0.110", "10.0.0.0/24", router=IPv4Address("10.0.0.1"))
    server = DhcpServer(
        "eth0", "10.0.0.1", "full",
        lambda c: BootTarget.for_http("10.0.0.1", 8080, c.mac) if c.mac == MAC else None,
        pools=[pool], conn=facade.db(), observe=appliance._dhcp_seen,
    )  # fmt: skip
    ((reply, _),) = server.handle(build(request(MAC, o.DISCOVER, arch=0)), 67, ("0.0.0.0", 68))
    offer = parse(reply)
    server.handle(build(request("02:00:00:00:00:99", o.DISCOVER)), 67, ("0.0.0.0", 68))  # no PXE
    ack = build(request(MAC, o.REQUEST, requested=offer.yiaddr, server_id="10.0.0.1", arch=0))
    server.handle(ack, 67, ("0.0.0.0", 68))
    appliance._tftp_generated("undionly.kpxe", str(offer.yiaddr))  # a read request
    got = timeline.events(facade.db(), MAC)
    assert [(e["kind"], e["facts"].get("message")) for e in got] == [
        ("dhcp-offer", "OFFER"),
        ("dhcp-offer", "ACK"),
        ("tftp", None),
    ]
    assert got[0]["facts"]["firmware"] == "bios" and got[0]["facts"]["file"] == "undionly.kpxe"
    assert got[0]["facts"]["address"] == str(offer.yiaddr)
    assert got[0]["detail"] == f"DHCP OFFER: bios, address {offer.yiaddr}, boot undionly.kpxe"
    assert got[2]["facts"] == {"file": "undionly.kpxe", "address": str(offer.yiaddr)}
    assert timeline.events(facade.db(), "02:00:00:00:00:99") == []
