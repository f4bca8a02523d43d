"""The built boot environment under QEMU (TCG): it finds real (virtual) disks with udev
— captured as golden files in tests/golden/udev/ — and its client reaches a live
appliance over the network and refuses what it must not write.  (A restore through
the real PXE path, byte for byte, is the lab's boot matrix, tests/lab/test_matrix_boot.py.)

The boot environment is built once and cached (``$SLATE_TEST_CACHE``, default
/var/cache/slate-tests); a first build takes ~2 min, later ones copy the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from appliance import db
from appliance.config import Layout
from appliance.http import create_app
from appliance.http.server import HttpServer
from appliance.jobs import Jobs
from appliance.machines import Inventory
from appliance.store import Store
from appliance.store.importer import import_image
from bootimage.builder.build import BUDGET, build
from bootimage.client.disks import disk_record
from bootimage.client.main import DUMP_BEGIN, DUMP_END
from tests.conftest import require_root

CACHE = Path(os.environ.get("SLATE_TEST_CACHE", "/var/cache/slate-tests"))
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "udev" / "qemu-disks.json"
MIB = 1024 * 1024
MAC = "52:54:00:5a:7e:01"
VOLATILE = ("USEC_INITIALIZED", "DISKSEQ", "ID_PART_TABLE_UUID")


@pytest.fixture(scope="module")
def bootenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root()
    out = tmp_path_factory.mktemp("bootenv")
    result = build(out, CACHE, log=lambda m: print(f"[bootimage] {m}", flush=True))
    assert result.initrd.stat().st_size <= BUDGET
    return out


def _disk(tmp: Path, name: str, size: int = 64 * MIB) -> Path:
    path = tmp / f"{name}.img"
    with path.open("wb") as f:
        f.truncate(size)
    return path


def _qemu(bootenv: Path, append: str, devices: list[str], log: Path) -> subprocess.Popen[bytes]:
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
        *devices,
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
        tail = log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"QEMU did not finish in {timeout:.0f} s:\n{tail}") from exc
    return log.read_text(errors="replace")


def _drive(path: Path, ident: str) -> list[str]:
    return ["-drive", f"file={path},if=none,id={ident},format=raw"]


def test_disks_seen_by_udev_then_a_job_refuses_each_of_them(bootenv: Path, tmp_path: Path) -> None:
    """One boot (``slate.dump=disks`` beside a job): udev's facts of seven kinds of disk,
    then a restore job of a 96 MiB image that no disk can take: each fixed disk is too
    small (64 MiB) or has 4096-byte sectors, and the USB stick (128 MiB) is removable.
    Not a byte is written to any of them."""
    names = ("virtio", "sata", "nvme", "usb", "scsi", "k4", "nvme4k")
    d = {n: _disk(tmp_path, n, 128 * MIB if n == "usb" else 64 * MIB) for n in names}
    devices = [
        *_drive(d["virtio"], "d0"),
        "-device",
        "virtio-blk-pci,drive=d0,serial=VIRTIO-SER1",
        "-device",
        "ahci,id=ahci0",
        *_drive(d["sata"], "d1"),
        "-device",
        "ide-hd,drive=d1,bus=ahci0.0,serial=SATA-SER2,model=Slate SATA Disk",
        *_drive(d["nvme"], "d2"),
        "-device",
        "nvme,drive=d2,serial=NVME-SER3",
        "-device",
        "qemu-xhci,id=xhci",
        *_drive(d["usb"], "d3"),
        "-device",
        "usb-storage,bus=xhci.0,drive=d3,removable=on,serial=USB-SER4",
        "-device",
        "virtio-scsi-pci,id=scsi0",
        *_drive(d["scsi"], "d4"),
        "-device",
        "scsi-hd,drive=d4,bus=scsi0.0,serial=SCSI-SER5,wwn=0x5000c50015ea71ac",
        *_drive(d["k4"], "d5"),
        "-device",
        "virtio-blk-pci,drive=d5,serial=VIRTIO-4KN,logical_block_size=4096,"
        "physical_block_size=4096",
        *_drive(d["nvme4k"], "d6"),
        "-device",
        "nvme,drive=d6,serial=NVME-4KN,logical_block_size=4096,physical_block_size=4096",
    ]
    jobs, job_id, out = _boot_job(bootenv, tmp_path, devices, "slate.dump=disks")
    ended = jobs.get(job_id)
    assert ended.state == "failed", f"{ended.state}\n{out[-3000:]}"
    assert "no disk can take" in ended.reason
    assert "/dev/vda (64 MiB" in ended.reason and "too small" in ended.reason
    assert "removable" in ended.reason
    assert all(path.stat().st_blocks == 0 for path in d.values())  # untouched
    assert DUMP_BEGIN in out, out[-3000:]
    dump = json.loads(out.split(DUMP_BEGIN, 1)[1].split(DUMP_END, 1)[0].replace("\r", ""))
    facts = [_stable(f) for f in dump["facts"] if f["properties"].get("DEVTYPE") == "disk"]
    records = [r for r in (disk_record(f["properties"], f["attributes"]) for f in facts) if r]
    serials = {r.serial: r for r in records}
    assert set(serials) >= {
        "VIRTIO-SER1",
        "SATA-SER2",
        "NVME-SER3",
        "USB-SER4",
        "SCSI-SER5",
        "VIRTIO-4KN",
        "NVME-4KN",
    }, serials
    assert serials["USB-SER4"].removable and serials["USB-SER4"].transport == "usb"
    assert serials["VIRTIO-4KN"].logical_sector_size == 4096
    assert serials["SCSI-SER5"].wwn == "0x5000c50015ea71ac"
    assert serials["NVME-SER3"].transport == "nvme"
    assert serials["NVME-4KN"].transport == "nvme"
    assert serials["NVME-4KN"].logical_sector_size == 4096
    assert serials["SATA-SER2"].transport == "ata"
    if os.environ.get("UPDATE_GOLDEN") or not GOLDEN.exists():
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({"facts": facts}, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())["facts"]
    golden_records = [disk_record(f["properties"], f["attributes"]) for f in golden]
    # Kernel names (sdb/sdc) depend on probe order, which varies from boot to boot; that
    # is why targets are chosen by identity.  Compare everything else, keyed by serial.
    assert _by_serial([r for r in golden_records if r]) == _by_serial(records)


def _by_serial(records: list) -> dict:
    return {r.serial: replace(r, path="", name="") for r in records}


def _stable(fact: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    props = {k: v for k, v in fact["properties"].items() if k not in VOLATILE}
    return {"properties": props, "attributes": fact["attributes"]}


def _appliance(tmp_path: Path) -> tuple[Jobs, Layout]:
    """A data dir with a 96 MiB GPT image "lab" and the machine MAC as host vm1."""
    source = tmp_path / "master.img"
    with source.open("wb") as f:
        f.truncate(96 * MIB)
    subprocess.run(
        ["sgdisk", "-n1:2048:0", "-t1:8300", str(source)], check=True, capture_output=True
    )
    with source.open("r+b") as f:
        f.seek(2 * MIB)
        f.write(os.urandom(6 * MIB))
    home = tmp_path / "home"
    home.mkdir()
    layout = Layout(home)
    conn = db.connect(layout.db)
    import_image(Store(layout), [source], "lab")
    Inventory(conn).add_host(MAC, "vm1", actor="test")
    return Jobs(conn, layout), layout


def _boot_job(
    bootenv: Path, tmp_path: Path, devices: list[str], extra: str = ""
) -> tuple[Jobs, int, str]:
    """Boot the machine for a restore job of "lab"; returns (jobs, job id, console)."""
    jobs, layout = _appliance(tmp_path)
    job = jobs.restore("vm1", "lab", actor="test", options={"after": "poweroff"})
    token = jobs.token(job.id)
    server = HttpServer(create_app(layout, plugins=False), "127.0.0.1", 0)
    server.start()
    try:
        append = (
            f"slate.url=http://10.0.2.2:{server.port} slate.job={job.id} "
            f"slate.token={token} slate.mac={MAC} {extra}"
        )
        log = tmp_path / "console.log"
        started = time.monotonic()
        out = _wait(_qemu(bootenv, append, devices, log), log, 200)
        print(f"boot + job + poweroff under TCG: {time.monotonic() - started:.0f} s")
    finally:
        server.stop()
    return jobs, job.id, out
