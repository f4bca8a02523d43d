"""The pure parts of the boot and disk matrix (issue 15): UEFI HTTP boot answers for a
real OVMF HTTP-boot DISCOVER, the undionly.kpxe switch for iPXE ROMs, and the QEMU
command lines of the lab's NVMe, SATA and HTTP-boot machines."""

from __future__ import annotations

import time
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from appliance.boot.chainload import WINDOW, Chainload
from appliance.config import Layout
from appliance.dhcp import options as o
from appliance.dhcp.decide import (
    BootTarget,
    ClientInfo,
    boot_file,
    classify,
    full_reply,
    proxy_reply,
)
from appliance.dhcp.leases import Pool
from appliance.dhcp.packet import parse
from appliance.errors import DiskRefused
from appliance.lab.qemu import Machine, MachineError
from appliance.machines import Inventory
from appliance.server import Appliance
from appliance.settings import Settings
from bootimage.client.select import Need, choose
from tests.unit.test_dhcp_codec import GOLDEN

SERVER = IPv4Address("10.0.0.1")
URL = "http://10.0.0.1:80/ipxe/snponly.efi"


def _capture(name: str) -> bytes:
    return (GOLDEN / f"{name}.bin").read_bytes()


@pytest.mark.parametrize("mode", ["full", "proxy"])
def test_ovmf_http_boot_gets_httpclient_and_the_url(mode: str) -> None:
    req = parse(_capture("ovmf-http-discover"))
    client = classify(req)
    assert (client.firmware, client.arch, client.is_http) == ("uefi-http", 16, True)
    target = BootTarget.for_http(SERVER, 80, client.mac, http_url=URL)
    if mode == "full":
        pool = Pool.parse("10.0.0.100-10.0.0.150", "10.0.0.0/24")
        reply = full_reply(req, client, o.OFFER, IPv4Address("10.0.0.100"), pool, target, SERVER)
    else:
        got = proxy_reply(req, client, target, SERVER, 67)
        assert got is not None
        reply = got
        assert reply.yiaddr == IPv4Address(0)  # proxy: boot information only
    assert reply.get(o.VENDOR_CLASS) == b"HTTPClient"  # firmware ignores offers without it
    assert reply.file.rstrip(b"\0") == URL.encode()
    assert reply.get(o.VENDOR_SPECIFIC) is None  # no PXE discovery control for HTTP
    assert reply.get(o.CLIENT_UUID) == req.get(o.CLIENT_UUID)


def test_http_boot_request_is_answered_the_same_way() -> None:
    req = parse(_capture("ovmf-http-request"))
    client = classify(req)
    target = BootTarget.for_http(SERVER, 80, client.mac, http_url=URL)
    assert boot_file(client, target) == (URL, "HTTPClient")


def test_an_ipxe_rom_told_to_chainload_gets_undionly_then_uefi_ipxe_does_not() -> None:
    bios = classify(parse(_capture("ipxe-bios-discover")))
    plain = BootTarget.for_http(SERVER, 80, bios.mac)
    chain = BootTarget.for_http(SERVER, 80, bios.mac, chainload=True)
    assert boot_file(bios, plain) == (plain.script_url, "PXEClient")
    assert boot_file(bios, chain) == ("undionly.kpxe", "PXEClient")
    uefi_ipxe = classify(parse(_capture("ovmf-uefi-discover")))
    assert boot_file(uefi_ipxe, chain) == ("snponly.efi", "PXEClient")  # not an iPXE ROM


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_chainload_round_rom_then_undionly_then_the_rom_again() -> None:
    clock = Clock()
    chain = Chainload(clock)
    ip = "10.77.0.101"
    # The ROM's round: no undionly.kpxe fetched yet.
    assert chain.wants_undionly(ip, request=False)
    assert chain.wants_undionly(ip, request=True)
    chain.fetched("snponly.efi", ip)  # another file does not count
    assert chain.wants_undionly(ip, request=False)
    chain.fetched("undionly.kpxe", ip)
    clock.now += 2
    # undionly's round: DISCOVER and REQUEST get the script; the REQUEST ends it.
    assert not chain.wants_undionly(ip, request=False)
    assert not chain.wants_undionly(ip, request=True)
    # The next boot starts from the ROM again.
    assert chain.wants_undionly(ip, request=False)
    # Another machine's fetch does not count for this one, nor does an unknown address.
    chain.fetched("undionly.kpxe", "10.77.0.102")
    assert chain.wants_undionly(ip, request=False)
    assert chain.wants_undionly(None, request=False)


def test_a_stale_fetch_does_not_count() -> None:
    clock = Clock()
    chain = Chainload(clock)
    chain.fetched("undionly.kpxe", "10.77.0.101")
    clock.now += WINDOW + 1
    assert chain.wants_undionly("10.77.0.101", request=False)


def _device_args(m: Machine) -> list[str]:
    argv = m.argv()
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]


def test_disk_models_become_qemu_devices_with_serial_and_boot_order(tmp_path: object) -> None:
    m = Machine(
        "m",
        "uefi",
        disks=[("/x/a.img", "NV1"), ("/x/b.img", "NV4K"), ("/x/c.img", "SA1"), ("/x/d.img", "V1")],
        disk_models=["nvme", "nvme-4k", "sata"],
        workdir=str(tmp_path),
    )
    devices = _device_args(m)
    assert "ahci,id=ahci0" in devices
    assert "nvme,drive=d0,serial=NV1,bootindex=2" in devices
    assert (
        "nvme,logical_block_size=4096,physical_block_size=4096,drive=d1,serial=NV4K,bootindex=3"
        in devices
    )
    assert "ide-hd,bus=ahci0.0,drive=d2,serial=SA1,bootindex=4" in devices
    assert "virtio-blk-pci,drive=d3,serial=V1,bootindex=5" in devices  # the default model


def test_http_netboot_turns_ovmf_pxe_off(tmp_path: object) -> None:
    m = Machine("h", "uefi", tap="tap0", netboot="http", workdir=str(tmp_path))
    argv = m.argv()
    assert "name=opt/org.tianocore/IPv4PXESupport,string=n" in argv
    assert "name=opt/org.tianocore/IPv6PXESupport,string=n" in argv
    pxe = Machine("p", "uefi", tap="tap0", workdir=str(tmp_path))
    assert not any("PXESupport" in a for a in pxe.argv())


def test_bad_lab_machine_settings_say_what_to_use(tmp_path: object) -> None:
    with pytest.raises(MachineError, match="not available with bios"):
        Machine("b", "bios", netboot="http", workdir=str(tmp_path))
    with pytest.raises(MachineError, match="floppy") as err:
        Machine("b", "bios", disks=[("/x", "S")], disk_models=["floppy"], workdir=str(tmp_path))
    assert "nvme-4k" in str(err.value.hint)


def test_appliance_hands_undionly_to_an_ipxe_rom_until_it_fetched_it(tmp_path: Path) -> None:
    """The composition: real iPXE BIOS DISCOVER/REQUEST captures, the lease of full
    mode, and the TFTP server's view of the transfer (``_tftp_generated``)."""
    discover = classify(parse(_capture("ipxe-bios-discover")))
    request = classify(parse(_capture("ipxe-bios-request")))
    ip = str(request.requested_ip)
    settings = Settings(
        interface="eth0", address="10.77.0.1", prefix=24, dhcp="full", ipxe_rom_chainload=True
    )
    app = Appliance(Layout(tmp_path), settings)
    Inventory(app.db()).add_host(discover.mac, "pc-13", actor="test")
    app.db().execute(
        "INSERT INTO leases(ip, mac, state, expires) VALUES (?, ?, 'bound', ?)",
        (ip, discover.mac, time.time() + 3600),
    )
    script = f"http://10.77.0.1:80/boot/{discover.mac}.ipxe"

    def answer(client: ClientInfo) -> str:
        return boot_file(client, app.boot_hook(client))[0]  # type: ignore[index]

    assert answer(discover) == answer(request) == "undionly.kpxe"  # the ROM's round
    assert app._tftp_generated("undionly.kpxe", ip) is None  # served from the root
    assert answer(discover) == answer(request) == script  # undionly's round
    assert answer(discover) == "undionly.kpxe"  # the next boot: the ROM again
    app.settings = replace(settings, ipxe_rom_chainload=False)
    assert answer(discover) == script  # off: the ROM gets its script at once


def test_the_captured_4k_nvme_disk_is_refused_for_a_512_byte_image_by_name() -> None:
    from tests.unit.test_disks_golden import golden_disks

    disks = list(golden_disks().values())
    image = Need(48 << 20, 512, "image 'lab' disk 0")
    with pytest.raises(DiskRefused) as err:
        choose(disks, image, {"serial": "NVME-4KN"})
    assert err.value.message.startswith("refusing /dev/nvme1n1 (64 MiB, QEMU NVMe Ctrl, NVME-4KN)")
    assert "4096-byte sectors, the image has 512-byte sectors" in err.value.message
    assert err.value.hint
    # An image captured from a 4Kn disk goes there.
    assert choose(disks, Need(48 << 20, 4096), {"serial": "NVME-4KN"}).path == "/dev/nvme1n1"
