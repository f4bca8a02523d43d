"""Issue 14's machine side in QEMU (TCG): SMART as the boot environment reads it, and a
register job whose hardware facts reach the console, then a power-off request from it.

One machine, two short boots, the same three disks: a SATA disk on AHCI (QEMU's ide-hd
answers SMART), an NVMe disk (a health log) and a virtio disk (no SMART at all: unknown,
not failed).  The first boot (a register job) also prints smartctl's raw answers; both
set the SMBIOS serial and UUID with ``-smbios type=1``.
The machine reaches the appliance through QEMU's user network (10.0.2.2), as
test_bootimage_boot does: no namespace needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from appliance import db, users
from appliance.config import Layout
from appliance.http import create_app
from appliance.http.server import HttpServer
from appliance.jobs import Jobs
from appliance.machines import Inventory, diskhealth
from appliance.machines import facts as machine_facts
from appliance.machines import power as machine_power
from bootimage.client.checkup import SMART_BEGIN, SMART_END
from bootimage.client.health import health_record

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "smart"
MIB = 1024 * 1024
MAC = "52:54:00:5a:7e:14"
SERIAL = "SLATE-LAB-0014"
UUID = "6a1f3c2e-14aa-4d0e-9b7c-5e1a7e000014"
PASSWORD = "a long enough lab password"


def _disks(tmp: Path) -> list[str]:
    args = []
    for name in ("sata", "nvme", "virtio"):
        path = tmp / f"{name}.img"
        with path.open("wb") as f:
            f.truncate(64 * MIB)
        args += ["-drive", f"file={path},if=none,id={name},format=raw"]
    return [
        *args,
        "-device",
        "ahci,id=ahci",
        "-device",
        "ide-hd,bus=ahci.0,drive=sata,serial=SATA-SMART1,model=Slate SMART Disk",
        "-device",
        "nvme,drive=nvme,serial=NVME-SMART2",
        "-device",
        "virtio-blk-pci,drive=virtio,serial=VIRTIO-NOSMART3",
    ]


def _qemu(bootenv: Path, append: str, extra: list[str], log: Path) -> subprocess.Popen[bytes]:
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "1024",
        "-smp",
        "1",
        "-kernel",
        str(bootenv / "vmlinuz"),
        "-initrd",
        str(bootenv / "initrd.img"),
        "-append",
        f"console=ttyS0 quiet {append}",
        "-nographic",
        "-no-reboot",
        "-netdev",
        "user,id=n0",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={MAC}",
        *extra,
    ]
    return subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )


def _wait(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise AssertionError(f"QEMU did not finish in {timeout:.0f} s:\n{_tail(log)}") from exc
    return log.read_text(errors="replace")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def assert_smart_read(out: str) -> None:
    """The SMART dump the boot printed before its job: SATA and NVMe answer (passed),
    virtio has no SMART at all (unknown, not failed); kept as golden files."""
    assert SMART_BEGIN in out, out[-3000:]
    dump = json.loads(out.split(SMART_BEGIN, 1)[1].split(SMART_END, 1)[0].replace("\r", ""))
    assert set(dump) >= {"SATA-SMART1", "NVME-SMART2", "VIRTIO-NOSMART3"}, sorted(dump)
    records = {
        serial: health_record(d["path"], d["smartctl"]).to_dict() for serial, d in dump.items()
    }
    sata, nvme, virtio = (records[s] for s in ("SATA-SMART1", "NVME-SMART2", "VIRTIO-NOSMART3"))
    assert (sata["kind"], sata["passed"]) == ("ata", True), sata
    assert sata["reallocated"] is not None, sata  # QEMU's ide-hd reports attribute 5
    assert (nvme["kind"], nvme["passed"]) == ("nvme", True), nvme
    assert (virtio["kind"], virtio["passed"]) == ("none", None), virtio
    verdicts = {s: diskhealth.judge(r).status for s, r in records.items()}
    assert verdicts["SATA-SMART1"] == "ok" and verdicts["NVME-SMART2"] == "ok"
    assert verdicts["VIRTIO-NOSMART3"] == "unknown"
    names = {
        "SATA-SMART1": "qemu-ide-hd",
        "NVME-SMART2": "qemu-nvme",
        "VIRTIO-NOSMART3": "qemu-virtio",
    }
    for serial, name in names.items():
        golden = GOLDEN / f"{name}.json"
        if os.environ.get("UPDATE_GOLDEN") or not golden.exists():
            golden.write_text(json.dumps(dump[serial]["smartctl"], indent=1, sort_keys=True) + "\n")


def _console_page(layout: Layout, mac: str) -> str:
    """The machine's hardware page through the real console app (Flask test client)."""
    conn = db.connect(layout.db)
    users.add(conn, "lab-tech", "technician", PASSWORD, "test")
    conn.close()
    app = create_app(layout)  # with the console plugin
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token, "no login form"
    form = {"name": "lab-tech", "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/login", data=form).status_code == 302
    return client.get(f"/machines/{mac}/hardware").text


def test_register_job_reads_smart_reports_facts_and_waits_for_power_off(bootenv: Path, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    layout = Layout(home)
    conn = db.connect(layout.db)
    Inventory(conn).add_host(MAC, "lab-facts", actor="test")
    jobs = Jobs(conn, layout)
    job = jobs.create(
        "register", "lab-facts", actor="test", options={"after": "reboot", "hold": 300}
    )
    server = HttpServer(create_app(layout, plugins=False), "127.0.0.1", 0)
    server.start()
    log = tmp_path / "console.log"
    smbios = [
        "-smbios",
        f"type=1,manufacturer=Slate Lab,product=QEMU PC,serial={SERIAL},uuid={UUID}",
    ]
    append = (  # slate.dump=smart: the raw smartctl answers on the console, then the job
        f"slate.url=http://10.0.2.2:{server.port} slate.job={job.id} "
        f"slate.token={jobs.token(job.id)} slate.mac={MAC} slate.dump=smart"
    )
    started = time.monotonic()
    proc = _qemu(bootenv, append, [*_disks(tmp_path), *smbios], log)
    try:
        deadline = time.monotonic() + 240
        while machine_power.waiting_job(conn, MAC) is None:  # done, and polling for power
            assert proc.poll() is None, f"QEMU ended early:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"the machine never waited:\n{_tail(log)}"
            time.sleep(1)
        waited = time.monotonic() - started
        assert jobs.get(job.id).state == "done", jobs.get(job.id).reason
        machine_power.request_power(conn, "lab-facts", "poweroff", actor="test")
        out = _wait(proc, log, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    print(f"boot + register + wait under TCG: {waited:.0f} s; to power-off: "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    assert "the appliance asks for poweroff" in out and "poweroff in 5 s" in out, out[-3000:]
    assert_smart_read(out)
    found = machine_facts.facts_of(conn, MAC)
    assert found is not None
    assert (found["uuid"], found["serial"]) == (UUID, SERIAL)
    facts = found["facts"]
    assert facts["system_vendor"] == "Slate Lab" and facts["system_product"] == "QEMU PC"
    assert facts["memory_bytes"] > 512 * MIB and facts["cpu"]["threads"] == 1
    serials = {d["serial"]: d for d in facts["disks"]}
    assert set(serials) == {"SATA-SMART1", "NVME-SMART2", "VIRTIO-NOSMART3"}, serials
    assert serials["SATA-SMART1"]["size"] == 64 * MIB
    assert [n["mac"] for n in facts["nics"]] == [MAC]
    health = {
        h["facts"].get("serial") or h["path"]: h["status"]
        for h in machine_facts.health_of_host(conn, MAC)
    }
    assert sorted(health.values()) == ["ok", "ok", "unknown"], health
    log_lines = "\n".join(x["line"] for x in jobs.log_lines(job.id))
    assert f"SMBIOS UUID {UUID}" in log_lines and "unknown, no SMART answer" in log_lines
    page = _console_page(layout, MAC)
    assert f'id="fact-serial">{SERIAL}<' in page and f'id="fact-uuid">{UUID}<' in page
    assert "SATA-SMART1" in page and "VIRTIO-NOSMART3" in page and 'class="health-unknown"' in page


def test_a_known_mac_in_another_machine_is_refused_before_a_write(bootenv: Path, tmp_path):
    """The laptop cart: lab-facts' MAC (its USB adapter) boots in a machine whose SMBIOS
    UUID is not lab-facts' pinned one.  Its restore job fails before a byte is written."""
    from appliance.store import Store
    from appliance.store.importer import import_image

    home = tmp_path / "home"
    home.mkdir()
    layout = Layout(home)
    source = tmp_path / "master.img"
    with source.open("wb") as f:
        f.truncate(8 * MIB)
        f.seek(MIB)
        f.write(os.urandom(MIB))
    import_image(Store(layout), [source], "lab")
    conn = db.connect(layout.db)
    Inventory(conn).add_host(MAC, "lab-facts", actor="test")
    jobs = Jobs(conn, layout)
    # lab-facts registered earlier, from its own mainboard:
    earlier = jobs.create("register", "lab-facts", actor="test")
    machine_facts.record_facts(
        conn, earlier, {"system_uuid": "11111111-2222-4333-8444-555555555555"}
    )
    jobs.cancel(earlier.id, actor="test")
    job = jobs.restore("lab-facts", "lab", actor="test", options={"hold": 300})
    server = HttpServer(create_app(layout, plugins=False), "127.0.0.1", 0)
    server.start()
    log = tmp_path / "console.log"
    disks = _disks(tmp_path)
    append = (
        f"slate.url=http://10.0.2.2:{server.port} slate.job={job.id} "
        f"slate.token={jobs.token(job.id)} slate.mac={MAC}"
    )
    started = time.monotonic()
    proc = _qemu(bootenv, append, [*disks, "-smbios", f"type=1,serial={SERIAL},uuid={UUID}"], log)
    try:
        deadline = time.monotonic() + 240
        while machine_power.waiting_job(conn, MAC) is None:  # failed, and waiting
            assert proc.poll() is None, f"QEMU ended early:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"the machine never waited:\n{_tail(log)}"
            time.sleep(1)
        machine_power.request_power(conn, "lab-facts", "poweroff", actor="test")
        out = _wait(proc, log, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    print(f"boot + refused restore + power-off under TCG: {time.monotonic() - started:.0f} s")
    ended = jobs.get(job.id)
    assert ended.state == "failed", f"{ended.state}\n{out[-3000:]}"
    assert f"has SMBIOS UUID {UUID}" in ended.reason and "nothing was written" in ended.reason
    for name in ("sata", "nvme", "virtio"):
        assert (tmp_path / f"{name}.img").stat().st_blocks == 0, name  # untouched
    found = machine_facts.facts_of(conn, MAC)
    assert found is not None and found["uuid"] == "11111111-2222-4333-8444-555555555555"
