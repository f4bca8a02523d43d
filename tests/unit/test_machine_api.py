"""The client API's machine calls (/facts, /health, /power) on a real appliance app, and
the CLI around them (`slate job register|restore --ignore-disk-health`, `slate host
facts|power|list --search|forget-uuid`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from http_kit import V1, bearer, write_image

from appliance import db
from appliance.config import Layout
from appliance.errors import Conflict, UsageError
from appliance.http import create_app
from appliance.jobs import testing as job_rows
from appliance.machines import facts as machine_facts
from appliance.machines import power as machine_power
from appliance.notify import outbox
from appliance.settings import Settings
from bootimage.client.health import health_record

API = "/api/client/v1"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "smart"
MACHINE = {"REMOTE_ADDR": "10.0.0.5"}
UUID_A = "4c4c4544-0042-3510-8052-b4c04f4e4a31"
UUID_B = "8d2f3a1e-55aa-4b7c-9d1e-0123456789ab"


def facts(uuid: str, serial: str = "CZC1234XYZ") -> dict:
    return {
        "system_vendor": "HP",
        "system_product": "EliteDesk 800 G6",
        "system_serial": serial,
        "system_uuid": uuid,
        "board_serial": "PGABC123",
        "cpu": {"model": "Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz", "threads": 12},
        "memory_bytes": 16 * 2**30,
        "disks": [
            {"path": "/dev/nvme0n1", "model": "Samsung SSD 970", "serial": "S4EV1", "size": 5e11}
        ],
        "nics": [{"name": "eno1", "mac": "aa:bb:cc:00:00:01", "driver": "e1000e"}],
    }


def smart(name: str, path: str = "/dev/sda") -> dict:
    return health_record(path, json.loads((GOLDEN / name).read_text())).to_dict()


class World:
    def __init__(self, home: Path) -> None:
        self.layout = Layout(home)
        write_image(self.layout, "win11", V1)
        self.app = create_app(self.layout, plugins=False)
        self.f = self.app.extensions["slate"]
        for n in (1, 2):
            self.f.inventory.add_host(f"aa:bb:cc:00:00:0{n}", f"pc{n}", actor="t")
        self.client = self.app.test_client()
        self.client.environ_base.update(MACHINE)

    def start(self, host: str, **options) -> tuple[int, dict]:
        job = self.f.jobs.restore(host, "win11", actor="t", options=options)
        headers = bearer(self.f.jobs.token(job.id))
        assert self.client.get(f"{API}/job", headers=headers).status_code == 200
        return job.id, headers

    def log(self, job_id: int) -> str:
        return "\n".join(x["line"] for x in self.f.jobs.log_lines(job_id))


@pytest.fixture
def world(home) -> World:
    return World(home)


def test_facts_are_stored_and_pin_the_smbios_uuid(world):
    job, headers = world.start("pc1")
    resp = world.client.post(f"{API}/facts", json={"facts": facts(UUID_A.upper())}, headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "uuid": UUID_A}
    stored = machine_facts.facts_of(world.f.db(), "aa:bb:cc:00:00:01")
    assert stored is not None and stored["uuid"] == UUID_A and stored["serial"] == "CZC1234XYZ"
    assert stored["facts"]["cpu"]["threads"] == 12 and stored["job"] == job
    assert world.f.jobs.get(job).state == "running"


def test_a_known_mac_with_another_machines_uuid_is_refused_before_any_write(world):
    job, headers = world.start("pc1")
    world.client.post(f"{API}/facts", json={"facts": facts(UUID_A)}, headers=headers)
    world.f.jobs.cancel(job, actor="t")
    # The cart's USB adapter (pc1's MAC) now sits in another laptop.
    job2, headers2 = world.start("pc1")
    resp = world.client.post(
        f"{API}/facts", json={"facts": facts(UUID_B, serial="OTHER")}, headers=headers2
    )
    assert resp.status_code == 409
    body = resp.get_json()
    assert f"SMBIOS UUID {UUID_B}" in body["error"] and UUID_A in body["error"]
    assert "nothing was written" in body["error"] and "forget-uuid pc1" in body["hint"]
    ended = world.f.jobs.get(job2)
    assert ended.state == "failed" and "nothing was written" in ended.reason
    assert "REFUSED" in world.log(job2)
    stored = machine_facts.facts_of(world.f.db(), "aa:bb:cc:00:00:01")
    assert stored is not None and stored["serial"] == "CZC1234XYZ"  # the right machine's
    # The client cannot go on: every further call of the job is 409.
    assert (
        world.client.post(f"{API}/state", json={"state": "running"}, headers=headers2).status_code
        == 409
    )


def test_a_uuid_pinned_to_another_host_is_refused_too(world):
    _job, headers = world.start("pc1")
    world.client.post(f"{API}/facts", json={"facts": facts(UUID_A)}, headers=headers)
    job2, headers2 = world.start("pc2")  # pc2 never reported: its MAC now shows pc1's UUID
    resp = world.client.post(f"{API}/facts", json={"facts": facts(UUID_A)}, headers=headers2)
    assert resp.status_code == 409
    assert "which is host pc1" in resp.get_json()["error"]
    assert world.f.jobs.get(job2).state == "failed"
    assert machine_facts.facts_of(world.f.db(), "aa:bb:cc:00:00:02") is None


def test_forget_uuid_lets_a_new_mainboard_pin_its_own(world):
    job, headers = world.start("pc1")
    world.client.post(f"{API}/facts", json={"facts": facts(UUID_A)}, headers=headers)
    world.f.jobs.cancel(job, actor="t")
    assert machine_facts.forget_uuid(world.f.db(), "pc1", actor="t") == UUID_A
    _job2, headers2 = world.start("pc1")
    resp = world.client.post(f"{API}/facts", json={"facts": facts(UUID_B)}, headers=headers2)
    assert resp.status_code == 200 and resp.get_json()["uuid"] == UUID_B


@pytest.mark.parametrize(
    "placeholder",
    ["00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
     "Not Settable", "Not Present", "03000200-0400-0500-0006-000700080009"],
)  # fmt: skip
def test_placeholder_uuids_identify_nothing(world, placeholder):
    """QEMU without -uuid, boards that never got one: every such machine is told apart
    by its MAC alone, as before, never refused as 'another machine'."""
    for host in ("pc1", "pc2"):
        _job, headers = world.start(host)
        resp = world.client.post(
            f"{API}/facts", json={"facts": facts(placeholder)}, headers=headers
        )
        assert resp.status_code == 200 and resp.get_json()["uuid"] == ""


def test_bad_bodies_are_400_with_a_reason(world):
    _job, headers = world.start("pc1")
    for path, body in (("/facts", {"facts": [1]}), ("/health", {"disks": "x"})):
        resp = world.client.post(API + path, json=body, headers=headers)
        assert resp.status_code == 400 and resp.get_json()["error"]
    resp = world.client.post(f"{API}/facts", data=b"not json", headers=headers)
    assert resp.status_code == 400


def test_a_failing_disk_fails_the_job_logs_the_facts_and_queues_disk_refused(world):
    outbox.add_webhook(world.f.db(), "http://127.0.0.1:9/hook", "s3cret", "disk-refused", "t")
    job, headers = world.start("pc1")
    disks = [smart("virtio-no-smart.json", "/dev/vda"), smart("ata-failing.json")]
    resp = world.client.post(f"{API}/health", json={"disks": disks}, headers=headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert [v["status"] for v in body["verdicts"]] == ["unknown", "refused"]
    assert body["refused"].startswith("disk refused for its health before anything was written")
    assert "--ignore-disk-health" in body["hint"]
    ended = world.f.jobs.get(job)
    assert ended.state == "failed" and "3912 reallocated sectors" in ended.reason
    log = world.log(job)
    assert "disk health /dev/vda (unknown model, no serial): unknown" in log
    assert "disk health /dev/sda (ST1000DM003-1CH162, Z1D5XK3M): refused" in log
    rows = world.f.db().execute("SELECT event, body FROM notify_outbox").fetchall()
    events = [r[0] for r in rows]
    assert events == ["disk-refused"]  # the webhook wants only disk-refused
    sent = json.loads(bytes(rows[0][1]))
    assert sent["host"] == "pc1" and sent["disks"][0]["facts"]["serial"] == "Z1D5XK3M"
    health = machine_facts.health_of_host(world.f.db(), "aa:bb:cc:00:00:01")
    assert [(h["path"], h["status"]) for h in health] == [
        ("/dev/vda", "unknown"),
        ("/dev/sda", "refused"),
    ]


def test_ignore_disk_health_writes_anyway_with_a_warning(world):
    job, headers = world.start("pc1", ignore_disk_health=True)
    resp = world.client.post(
        f"{API}/health", json={"disks": [smart("ata-failing.json")]}, headers=headers
    )
    assert resp.status_code == 200 and resp.get_json()["refused"] is None
    assert world.f.jobs.get(job).state == "running"
    assert "written anyway (--ignore-disk-health)" in world.log(job)
    health = machine_facts.health_of_host(world.f.db(), "aa:bb:cc:00:00:01")
    assert [h["status"] for h in health] == ["ignored"]


def test_limits_come_from_the_serve_settings(world):
    world.f.settings = Settings(disk_max_reallocated=500, disk_max_pending=10)
    job, headers = world.start("pc1")
    resp = world.client.post(
        f"{API}/health", json={"disks": [smart("ata-worn.json")]}, headers=headers
    )
    assert resp.get_json()["refused"] is None and world.f.jobs.get(job).state == "running"


def test_power_request_reaches_a_waiting_machine_once(world):
    job, headers = world.start("pc1")
    with pytest.raises(Conflict, match="not waiting in Slate's boot environment"):
        machine_power.request_power(world.f.db(), "pc1", "poweroff", actor="t")
    world.client.post(f"{API}/failed", json={"reason": "test"}, headers=headers)
    # The failed job's client waits and polls: its ended token may ask, nothing else.
    resp = world.client.get(f"{API}/power", headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"command": None, "poll": 5}
    assert (
        world.client.post(f"{API}/log", json={"lines": ["x"]}, headers=headers).status_code == 409
    )
    assert machine_power.request_power(world.f.db(), "pc1", "poweroff", actor="t") == job
    assert world.client.get(f"{API}/power", headers=headers).get_json()["command"] == "poweroff"
    assert world.client.get(f"{API}/power", headers=headers).get_json()["command"] is None
    state = machine_power.power_state(world.f.db(), "aa:bb:cc:00:00:01")
    assert state["last_request"]["command"] == "poweroff" and state["last_request"]["taken_at"]
    # from another address the token is refused
    other = world.client.get(
        f"{API}/power", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert other.status_code == 403


# -- CLI --------------------------------------------------------------------------------
def _report(home: Path, host: str, uuid: str) -> None:
    app = create_app(Layout(home), plugins=False)
    f = app.extensions["slate"]
    job = f.jobs.create("register", host, actor="t")
    client = app.test_client()
    headers = bearer(f.jobs.token(job.id))
    client.environ_base.update(MACHINE)
    assert client.get(f"{API}/job", headers=headers).status_code == 200
    assert (
        client.post(f"{API}/facts", json={"facts": facts(uuid)}, headers=headers).status_code == 200
    )
    client.post(
        f"{API}/health", json={"disks": [smart("nvme-ok.json", "/dev/nvme0n1")]}, headers=headers
    )
    client.post(f"{API}/done", json={"verified_bytes": 0}, headers=headers)


def test_cli_register_facts_search_and_power(slate, home):
    slate("host", "add", "aa:bb:cc:00:00:01", "--name", "pc1", check=True)
    slate("host", "add", "aa:bb:cc:00:00:02", "--name", "pc2", check=True)
    out = json.loads(slate("job", "register", "--host", "pc1", "--json", check=True).stdout)
    assert out[0]["action"] == "register" and out[0]["options"]["after"] == "reboot"
    slate("job", "cancel", str(out[0]["id"]), check=True)
    _report(home, "pc1", UUID_A)
    got = json.loads(slate("host", "facts", "pc1", "--json", check=True).stdout)
    assert got["facts"]["uuid"] == UUID_A and got["disk_health"][0]["status"] == "ok"
    text = slate("host", "facts", "pc1", check=True).stdout
    assert "CZC1234XYZ" in text and UUID_A in text and "i5-10500" in text and "e1000e" in text
    assert "hint: `slate job register --host pc2`" in slate("host", "facts", "pc2").stdout
    for needle in ("czc1234", UUID_A[:8], "elitedesk", "S4EV1"):
        found = json.loads(slate("host", "list", "--search", needle, "--json", check=True).stdout)
        assert [h["name"] for h in found] == ["pc1"], needle
    assert json.loads(slate("host", "list", "--search", "pc2", "--json").stdout)[0]["name"] == "pc2"
    proc = slate("host", "power", "pc1", "reboot")
    assert proc.returncode != 0
    assert "pc1 is not waiting in Slate's boot environment" in proc.stderr
    assert "hint:" in proc.stderr and "own agent" in proc.stderr
    assert slate("host", "power", "pc1", "explode").returncode == 2
    forgot = json.loads(slate("host", "forget-uuid", "pc1", "--json", check=True).stdout)
    assert forgot == {"host": "pc1", "forgot_uuid": UUID_A}
    assert "forgot SMBIOS UUID (none pinned)" in slate("host", "forget-uuid", "pc1").stdout


def test_cli_ignore_disk_health_on_restore_and_capture(slate, home):
    write_image(Layout(home), "win11", V1)
    slate("host", "add", "aa:bb:cc:00:00:01", "--name", "pc1", "--room", "lab", check=True)
    slate("host", "add", "aa:bb:cc:00:00:02", "--name", "pc2", check=True)
    args = ("job", "restore", "--room", "lab", "--image", "win11", "--ignore-disk-health")
    made = json.loads(slate(*args, "--after", "poweroff", "--json", check=True).stdout)
    assert made[0]["options"]["ignore_disk_health"] is True
    assert made[0]["options"]["after"] == "poweroff"
    cap = slate(
        "job",
        "capture",
        "--host",
        "pc2",
        "--image",
        "new",
        "--ignore-disk-health",
        "--json",
        check=True,
    )
    assert json.loads(cap.stdout)[0]["options"]["ignore_disk_health"] is True
    conn = db.connect(Layout(home).db)
    [row] = job_rows.rows(conn, "options", host="aa:bb:cc:00:00:02")
    plain = row["options"]
    assert json.loads(plain)["ignore_disk_health"] is True


def test_room_power_reaches_only_the_machines_waiting(world):
    inv = world.f.inventory
    for host in ("pc1", "pc2"):
        inv.update_host(host, actor="t", room="lab")
    job, headers = world.start("pc1")
    world.start("pc2")  # restoring: not waiting
    with pytest.raises(Conflict, match="no machine of room lab is waiting"):
        machine_power.request_power_room(world.f.db(), "lab", "reboot", actor="t")
    world.client.post(f"{API}/failed", json={"reason": "test"}, headers=headers)
    assert world.client.get(f"{API}/power", headers=headers).get_json()["command"] is None
    got = machine_power.request_power_room(world.f.db(), "lab", "reboot", actor="t")
    assert got == {"requested": [{"host": "pc1", "job": job}], "not_waiting": ["pc2"]}
    assert world.client.get(f"{API}/power", headers=headers).get_json()["command"] == "reboot"
    with pytest.raises(UsageError):
        machine_power.request_power_room(world.f.db(), "lab", "halt", actor="t")


def test_cli_room_power_says_who_was_not_waiting(slate):
    slate("host", "add", "aa:bb:cc:00:00:01", "--name", "pc1", "--room", "lab", check=True)
    proc = slate("room", "power", "lab", "poweroff")
    assert proc.returncode != 0 and "no machine of room lab is waiting" in proc.stderr
    assert "hint:" in proc.stderr
    assert slate("room", "power", "nowhere", "poweroff").returncode != 0
