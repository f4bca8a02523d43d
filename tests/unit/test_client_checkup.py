"""The client's side of issue 14 off the machine: the hardware-fact parsers on real file
shapes (/proc/cpuinfo, /proc/meminfo, /sys/class/dmi/id, /sys/class/net), and the
health check and power wait against a real appliance over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from http_kit import V1, write_image

from appliance.config import Layout
from appliance.http import create_app
from appliance.http.server import HttpServer
from appliance.machines import power as machine_power
from bootimage.client import checkup, facts
from bootimage.client.api import Api
from bootimage.client.health import health_record

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "smart"

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz
flags\t\t: fpu vme de pse

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz
"""
MEMINFO = "MemTotal:       16318412 kB\nMemFree:        15000000 kB\n"


def test_cpu_and_memory():
    assert facts.cpu_facts(CPUINFO) == {
        "model": "Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz",
        "threads": 2,
    }
    assert facts.memory_bytes(MEMINFO) == 16318412 * 1024
    assert facts.memory_bytes("garbage") == 0 and facts.cpu_facts("")["threads"] == 0


def test_dmi_values_placeholders_and_the_dmidecode_fallback():
    sysfs = {
        "sys_vendor": "Dell Inc.\n",
        "product_name": "OptiPlex 7080",
        "product_serial": "To Be Filled By O.E.M.",
        "product_uuid": "4C4C4544-0042-3510-8052-B4C04F4E4A31",
        "board_serial": "Default string",
        "chassis_serial": "Not Settable",
    }
    asked = []

    def dmidecode(keyword: str) -> str:
        asked.append(keyword)
        return {"system-serial-number": "7XK2Q53"}.get(keyword, "")

    got = facts.dmi_facts(lambda name: sysfs.get(name, ""), dmidecode)
    assert got["system_vendor"] == "Dell Inc." and got["system_product"] == "OptiPlex 7080"
    assert got["system_uuid"] == "4c4c4544-0042-3510-8052-b4c04f4e4a31"
    assert got["system_serial"] == "7XK2Q53"  # the placeholder → dmidecode's answer
    assert got["board_serial"] == "" and got["chassis_serial"] == ""
    assert "system-serial-number" in asked and "system-product-name" not in asked


def test_nics_from_a_sysfs_tree(tmp_path):
    net = tmp_path / "net"
    for name, mac, speed in (
        ("eno1", "AA:BB:CC:00:00:01", "1000"),
        ("wlp2s0", "aa:bb:cc:00:00:02", "-1"),
    ):
        dev = net / name
        (dev / "device").mkdir(parents=True)
        drivers = tmp_path / "drivers" / ("e1000e" if name == "eno1" else "iwlwifi")
        drivers.mkdir(parents=True)
        os.symlink(drivers, dev / "device" / "driver")
        (dev / "address").write_text(mac + "\n")
        (dev / "speed").write_text(speed + "\n")
    (net / "lo").mkdir()
    (net / "br0").mkdir()  # virtual: no device
    assert facts.nic_facts(net) == [
        {"name": "eno1", "mac": "aa:bb:cc:00:00:01", "driver": "e1000e", "speed_mbit": 1000},
        {"name": "wlp2s0", "mac": "aa:bb:cc:00:00:02", "driver": "iwlwifi", "speed_mbit": None},
    ]


@pytest.fixture
def appliance_api(home: Path):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    app = create_app(layout, plugins=False)
    f = app.extensions["slate"]
    f.inventory.add_host("aa:bb:cc:00:00:01", "pc1", actor="t")
    job = f.jobs.restore("pc1", "win11", actor="t")
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    api = Api(f"http://127.0.0.1:{server.port}", f.jobs.token(job.id), give_up_after=5)
    api.job()
    try:
        yield f, job.id, api
    finally:
        api.close()
        server.stop()


def test_check_disks_of_files_is_unknown_and_goes_on(appliance_api, tmp_path):
    f, job_id, api = appliance_api
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 4096)
    lines: list[str] = []
    verdicts = checkup.check_disks(api, [str(disk)], lines.append)
    assert [v["status"] for v in verdicts] == ["unknown"]
    assert f.jobs.get(job_id).state == "running"
    assert lines == [f"disk health {disk}: unknown"]


def test_a_disk_the_appliance_refuses_stops_the_client_before_any_write(appliance_api, tmp_path):
    f, job_id, api = appliance_api
    failing = json.loads((GOLDEN / "ata-failing.json").read_text())  # smartmontools' shape
    lines: list[str] = []
    with pytest.raises(checkup.RefusedByAppliance, match="3912 reallocated sectors") as caught:
        checkup.check_disks(
            api, ["/dev/sda"], lines.append, read=lambda p: health_record(p, failing)
        )
    assert "--ignore-disk-health" in str(caught.value.hint)
    assert f.jobs.get(job_id).state == "failed"
    assert lines == ["disk health /dev/sda: refused"]


def test_the_power_wait_takes_the_request_or_gives_up(appliance_api):
    f, job_id, api = appliance_api
    api.post_json("/failed", {"reason": "a test failure"})
    lines: list[str] = []
    assert checkup.wait_for_power(api, lines.append, hold=0.0) is None  # nothing asked
    assert "waiting in the boot environment" in lines[0]
    machine_power.note_poll(f.db(), job_id)  # the client has polled: it is waiting
    machine_power.request_power(f.db(), "pc1", "reboot", actor="t")
    slept: list[float] = []
    assert checkup.wait_for_power(api, lines.append, hold=60.0, sleep=slept.append) == "reboot"
    assert slept == [] and lines[-1] == "the appliance asks for reboot"
