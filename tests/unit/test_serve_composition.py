"""The composition of `slate serve` without sockets: TFTP root, DNS names, boot hook."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from appliance import db
from appliance.config import Layout
from appliance.dhcp.decide import BootTarget, ClientInfo
from appliance.errors import SlateError
from appliance.jobs import testing as job_rows
from appliance.machines import Inventory
from appliance.server import Appliance, dns_names, populate_tftp_root
from appliance.settings import Settings

ZERO = IPv4Address(0)


def client(mac: str, firmware: str = "bios", message_type: int = 1) -> ClientInfo:
    return ClientInfo(
        mac=mac, xid=1, message_type=message_type, arch=0, firmware=firmware, is_pxe=True,
        is_ipxe=False, user_class="", vendor_class="PXEClient", uuid="", giaddr=ZERO,
        ciaddr=ZERO, requested_ip=None, server_id=None, hostname="",
    )  # fmt: skip


def test_tftp_root_gets_real_copies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.kpxe").write_bytes(b"A" * 100)
    (src / "b.efi").write_bytes(b"B")
    root = tmp_path / "root"
    root.mkdir()
    (root / "undionly.kpxe").symlink_to(src / "a.kpxe")  # a link out of the root: replaced
    sources = {
        "undionly.kpxe": src / "a.kpxe",
        "snponly.efi": src / "b.efi",
        "shimx64.efi": src / "missing.efi",
    }
    assert populate_tftp_root(root, sources) == ["undionly.kpxe", "snponly.efi"]
    assert not (root / "undionly.kpxe").is_symlink()
    assert (root / "undionly.kpxe").read_bytes() == b"A" * 100
    before = os.stat(root / "snponly.efi").st_ino
    populate_tftp_root(root, sources)  # unchanged sources are not copied again
    assert os.stat(root / "snponly.efi").st_ino == before
    with pytest.raises(SlateError, match="missing"):
        populate_tftp_root(root, {"undionly.kpxe": src / "gone"})


def test_dns_names_from_reservations_and_live_leases(home: Path) -> None:
    conn = db.connect(Layout(home).db)
    Inventory(conn).add_host("02:00:00:00:00:01", "pc-01", ip="10.0.0.5", actor="test")
    now = time.time()
    conn.executemany(
        "INSERT INTO leases(ip, mac, state, expires, hostname) VALUES (?, ?, ?, ?, ?)",
        [
            ("10.0.0.100", "02:00:00:00:00:02", "bound", now + 600, "Lab-PC"),
            ("10.0.0.101", "02:00:00:00:00:03", "bound", now - 1, "expired"),
            ("10.0.0.102", "02:00:00:00:00:04", "bound", now + 600, "bad name!"),
            ("10.0.0.103", "02:00:00:00:00:01", "bound", now + 600, "ignored"),
        ],
    )
    names = dns_names(conn, Settings(address="10.0.0.1", prefix=24))
    assert names == {"slate": "10.0.0.1", "pc-01": "10.0.0.5", "lab-pc": "10.0.0.100"}


def test_boot_hook_silent_for_strangers_in_proxy_mode_and_records_them(home: Path) -> None:
    settings = Settings(interface="eth0", address="10.0.0.1", prefix=24, http_port=8080)
    app = Appliance(Layout(home), settings)
    assert app.boot_hook(client("02:00:00:00:00:09")) is None
    assert app.boot_hook(client("02:00:00:00:00:09", message_type=3)) is None
    seen = Inventory(app.db()).seen()
    assert [(s.mac, s.boots, s.firmware) for s in seen] == [("02:00:00:00:00:09", 1, "bios")]
    assert app.boot_hook(client("02:00:00:00:00:09", firmware="")) is None


def test_boot_hook_points_known_machines_at_their_boot_script(home: Path) -> None:
    settings = Settings(
        interface="eth0", address="10.0.0.1", prefix=24, http_port=8080, efi_boot_file="ipxe.efi"
    )
    app = Appliance(Layout(home), settings)
    Inventory(app.db()).add_host("02:00:00:00:00:01", "pc-01", actor="test")
    target = app.boot_hook(client("02:00:00:00:00:01", firmware="uefi"))
    assert target == BootTarget(
        script_url="http://10.0.0.1:8080/boot/02:00:00:00:00:01.ipxe",
        efi_file="ipxe.efi",
        http_url="http://10.0.0.1:8080/ipxe/ipxe.efi",
    )
    app.settings = replace(settings, secure_boot=True, dhcp="full")
    assert app.boot_hook(client("02:00:00:00:00:01", firmware="uefi")).secure_boot
    # Full mode: strangers boot their local disk (unknown = local), so they get a target.
    assert app.boot_hook(client("02:00:00:00:00:07")) is not None


def test_secure_boot_files_come_from_tftp(home: Path) -> None:
    """Debian's signed grub has no http module: config and kernel are TFTP paths."""
    layout = Layout(home)
    app = Appliance(layout, Settings(interface="eth0", address="10.0.0.1", prefix=24))
    boot = layout.bootimage
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"kernel")
    mac = "02:00:00:00:00:01"
    Inventory(app.db()).add_host(mac, "pc-01", actor="test")
    from appliance.jobs import Jobs

    job = Jobs(app.db(), layout).capture(mac, "img", actor="test")
    bootstrap = app._tftp_generated("grub/grub.cfg", "10.0.0.9")
    assert isinstance(bootstrap, bytes) and b"${net_default_mac}" in bootstrap
    cfg = app._tftp_generated(f"grub/grub.cfg-{mac.upper()}", "10.0.0.9")
    assert isinstance(cfg, bytes)
    text = cfg.decode()
    assert "linux (tftp,10.0.0.1)/bootenv/vmlinuz" in text
    assert "initrd (tftp,10.0.0.1)/bootenv/initrd.img" in text
    assert f"slate.job={job.id}" in text and "(http," not in text
    assert app._tftp_generated("bootenv/vmlinuz", "10.0.0.9") == boot / "vmlinuz"
    assert app._tftp_generated("bootenv/initrd.img", "10.0.0.9") is None  # not built
    assert app._tftp_generated("grub/grub.cfg-nonsense", "10.0.0.9") is None


def test_uefi_http_boot_gets_an_http_url_with_vendor_class_httpclient(home: Path) -> None:
    from appliance.dhcp.decide import boot_file

    settings = Settings(interface="eth0", address="10.0.0.1", prefix=24, http_port=8080)
    app = Appliance(Layout(home), settings)
    Inventory(app.db()).add_host("02:00:00:00:00:02", "pc-02", actor="test")
    http_client = replace(client("02:00:00:00:00:02", firmware="uefi-http"), arch=16)
    target = app.boot_hook(http_client)
    assert boot_file(http_client, target) == (
        "http://10.0.0.1:8080/ipxe/snponly.efi",
        "HTTPClient",
    )


def test_housekeeping_fails_a_job_whose_machine_went_silent(home: Path) -> None:
    from http_kit import V1, write_image

    from appliance.jobs import BOOT_TIMEOUT, Jobs
    from appliance.server import Housekeeping

    layout = Layout(home)
    write_image(layout, "win11", V1)
    conn = db.connect(layout.db)
    Inventory(conn).add_host("aa:bb:cc:00:00:09", "pc9", actor="t")
    jobs = Jobs(conn, layout)
    job = jobs.restore("pc9", "win11", actor="t")
    jobs.transition(job.id, "booting")
    job_rows.set_stamps(conn, job.id, updated_at="2000-01-01T00:00:00Z")
    keeper = Housekeeping(layout, db.ThreadConnections(layout.db), interval=0.05)
    keeper.start()
    try:
        deadline = time.monotonic() + 30
        while jobs.get(job.id).state != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        keeper.stop()
    assert jobs.get(job.id).state == "failed"
    assert f"within {BOOT_TIMEOUT // 60} min" in jobs.get(job.id).reason
