"""The boot and disk matrix (issue 15): cells the other lab tests do not boot.

Each machine both restores and boots the restored disk, so one machine boot proves a
firmware, a boot path and a disk type at once (docs/lab.md, "The boot matrix"):

* UEFI HTTP boot (OVMF, its PXE options off: vendor class ``HTTPClient``, option 93 =
  16) in full DHCP mode, onto an NVMe disk chosen by serial: the master fitted to a disk
  16 MiB smaller, with a host hook (so this disk is not compared with the image);
* BIOS PXE → ``undionly.kpxe`` over TFTP → iPXE → the boot script, onto a SATA disk on
  AHCI chosen by serial (``--ipxe-rom-chainload``: QEMU's BIOS ROM is iPXE itself);
* an NVMe disk with 4096-byte logical blocks, refused for the 512-byte-sector image
  before a byte is written;
* UEFI HTTP boot in proxy mode beside dnsmasq, up to the job's kernel and initramfs.

Each restored disk is then booted with the other firmware, straight from the disk.  The
first three cells share an appliance of their own (``--ipxe-rom-chainload`` must not
change what the other e2e tests boot), with identity turned off for the sample image so
a restored disk equals the image byte for byte; the 4K machine runs beside the first
cell.  The DHCP answers are read from a tcpdump capture on the lab's server interface,
not from Slate's own log.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.config import Layout
from appliance.dhcp import options as o
from appliance.dhcp.packet import Message, parse
from appliance.jobs.states import FINAL
from appliance.lab import steps
from appliance.lab.forward import enter_netns
from appliance.lab.harness import SERVER_IP, LabRun
from appliance.lab.masterimage import MasterImage, data_files
from appliance.lab.qemu import Machine
from appliance.store import Store
from tests.conftest import ROOT
from tests.interop.district_kit import District
from tests.lab.conftest import E2ELab, _log, first_difference, record_figure

if TYPE_CHECKING:
    from tests.lab.conftest import PxeLab

RESTORE_TIMEOUT = 600
BOOT_TIMEOUT = 240
HTTP_URL = f"http://{SERVER_IP}:80/ipxe/snponly.efi"
MIB = 1024 * 1024


@dataclass
class MatrixLab(E2ELab):
    pcap: Path = Path("/nonexistent")  # tcpdump of the lab server's DHCP traffic
    # The 4K NVMe cell: (machine, job id, power-on time), started with the appliance so
    # it runs beside the first cell (two machines at once on two cores).
    refusal: tuple[Machine, int, float] | None = None


@pytest.fixture(scope="module")
def matrix_session(
    tmp_path_factory: pytest.TempPathFactory, master_image: MasterImage, bootenv: Path
) -> Iterator[MatrixLab]:
    root = tmp_path_factory.mktemp("matrix")
    home = root / "home"
    home.mkdir()
    steps.ensure_bootenv(home, _log, source=bootenv)
    started = time.monotonic()
    version = steps.ensure_sample_image(home, master_image, _log)
    record_figure("matrix-import", seconds=time.monotonic() - started)
    # No identity step (issue 13) after these restores: the disk must equal the image.
    steps.slate(home, "image", "policy", steps.SAMPLE_IMAGE, "--no-identity")
    accel = os.environ.get("SLATE_LAB_ACCEL", "tcg")
    serve = ["--ipxe-rom-chainload", "--verbose"]
    with LabRun(home, root / "work", accel=accel, serve_args=serve) as run:
        assert run.srv is not None
        pcap = root / "dhcp.pcap"
        dump = run.srv.popen(
            ["tcpdump", "-i", "eth0", "-U", "-s", "0", "-w", str(pcap), "port 67 or port 68"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            lab = MatrixLab(home, run, master_image, version, pcap=pcap)
            lab.refusal = start_refusal_cell(lab)
            yield lab
        finally:
            dump.terminate()
            dump.wait(10)


@pytest.fixture
def matrix(matrix_session: MatrixLab) -> Iterator[MatrixLab]:
    matrix_session.mine = []
    yield matrix_session
    for m in matrix_session.mine:
        m.stop()


def replies_to(pcap: Path, mac: str) -> list[Message]:
    """DHCP replies (server → client) to ``mac`` in the capture, in order."""
    data, out, i = pcap.read_bytes(), [], 24
    while i + 16 <= len(data):
        incl = struct.unpack_from("<I", data, i + 8)[0]
        frame = data[i + 16 : i + 16 + incl]
        i += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        sport = struct.unpack_from("!H", frame, 14 + ihl)[0]
        if sport != 67:
            continue
        msg = parse(frame[14 + ihl + 8 :])
        if msg.mac == mac:
            out.append(msg)
    return out


def boot_file(msg: Message) -> str:
    raw = msg.file.rstrip(b"\0") or (msg.get(o.BOOTFILE_NAME) or b"")
    return raw.decode()


def own_uuid() -> list[str]:
    """QEMU's SMBIOS UUID is "Not Settable" unless given: a machine of its own has one."""
    return ["-uuid", str(uuid.uuid4())]


def restore_and_boot(lab: E2ELab, name: str, firmware: str, serial: str, *,
                     netns: str | None = None, version: str | None = None,
                     size: int | None = None, before: Callable[[Machine], object] | None = None,
                     **kw: object) -> tuple[str, int]:  # fmt: skip
    """Restore the sample image onto the disk ``serial`` names, boot it; the console and
    the job's id.
    ``netns``: the job is made from inside that namespace (the library it may need to
    ask is reachable from there).  ``version`` of ``size`` bytes (another than the
    sample's, say a fitted one): the restored disk is not compared with the image;
    ``before(machine)`` runs once the machine is registered, before its job is made."""
    if size is not None:
        kw["disk_size"] = size
    m = lab.machine(name, firmware, serial=serial, extra_args=own_uuid(), **kw)  # type: ignore[arg-type]
    steps.register(lab.home, [m])
    if before is not None:
        before(m)
    ref = f"{steps.SAMPLE_IMAGE}@{version or lab.version}"
    made: list[int] = []

    def make() -> None:
        if netns is not None:
            enter_netns(netns)  # this thread only
        made.extend(steps.restore(lab.home, [m.name], ref, disk={"serial": serial}))

    maker = threading.Thread(target=make)
    maker.start()
    maker.join()
    assert len(made) == 1, "the restore job was not made (see the thread's error above)"
    [job_id] = made
    watch = steps.Watch()
    lab.start(m)
    steps.wait_jobs(lab.home, [job_id], [m], RESTORE_TIMEOUT, watch=watch)
    marker = lab.image.marker_line(firmware)
    booted = steps.wait_booted([m], lambda _: marker, BOOT_TIMEOUT)
    job = steps.job(lab.home, job_id)
    assert job.state == "done" and job.verified_bytes >= (size or lab.image.size)
    log = " / ".join(_job_log(lab, job_id))
    assert "target for disk 0: " in log and serial in log.split("target for disk 0: ", 1)[1]
    if version is None:
        diff = first_difference(m.disks[0][0], lab.image.path)
        assert diff is None, f"restored disk differs from the image at offset {diff}"
    record_figure(f"matrix-{name}", **watch.figures(job_id), boot_after_done=booted[m.name],
                  power_on_to_booted=time.monotonic() - watch.started)  # fmt: skip
    return m.console(), job_id


def boots_on(lab: E2ELab, firmware: str, disk: Path, serial: str, model: str) -> float:
    """Boot a restored disk with other firmware (no network: straight from the disk);
    seconds from power-on to the restored system's marker."""
    m = Machine(f"{disk.stem}-{firmware}", firmware, disks=[(disk, serial)],  # type: ignore[arg-type]
                disk_models=[model], accel=lab.run.accel, workdir=lab.run.workdir)  # fmt: skip
    lab.mine.append(m)
    started = time.monotonic()
    m.start()
    m.wait_for(lab.image.marker_line(firmware), BOOT_TIMEOUT)
    took = time.monotonic() - started
    m.wait_exit(60)
    return took


def _job_log(lab: E2ELab, job_id: int) -> list[str]:
    from appliance.config import Layout
    from appliance.jobs import Jobs

    conn = steps.connect(lab.home)
    try:
        return [r["line"] for r in Jobs(conn, Layout(lab.home)).log_lines(job_id, 200)]
    finally:
        conn.close()


# The fitted master's post-restore hook: it runs in the real boot environment, with the
# restored root filesystem mounted where docs/hooks.md says; what it writes is on the disk.
HOOK = b"""#!/bin/sh
set -e
test -f "$SLATE_MNT_P3/etc/os-release"
echo "hooked $SLATE_HOST $SLATE_IMAGE@$SLATE_VERSION" > "$SLATE_MNT_P3/etc/slate-hook"
echo "mounts: $SLATE_MOUNTS"
"""


def test_uefi_http_boot_restores_onto_nvme_and_boots_it(matrix: MatrixLab, tmp_path: Path) -> None:
    """Also the smaller disk (issue 13): the master fitted with `slate image fit` to a disk
    16 MiB smaller (its last partition, the NTFS data one, shrunk) is what this machine
    restores, with a host hook; the restored Debian boots on UEFI and on BIOS, its NTFS
    volume is clean and holds the master's files, and the hook's file is in its root."""
    small = matrix.image.size - 16 * MIB
    ref = f"{steps.SAMPLE_IMAGE}@{matrix.version}"
    made = json.loads(steps.slate(matrix.home, "image", "fit", ref, "--size", str(small),
                                  "--json").stdout)  # fmt: skip
    assert made["size"] == small and made["partition"] == 4
    fitted = made["version"]
    hook = tmp_path / "10-lab.sh"
    hook.write_bytes(HOOK)
    try:
        console, job_id = restore_and_boot(
            matrix, "mx-uefi-http", "uefi", "MX-NVME-1", netboot="http", disk_model="nvme",
            version=fitted, size=small,
            before=lambda m: steps.slate(matrix.home, "hook", "add", "--host", m.name, str(hook)),
        )  # fmt: skip
    finally:
        # The library cell after this one expects the store to hold the sample version only.
        steps.slate(matrix.home, "image", "rm", f"{steps.SAMPLE_IMAGE}@{fitted}")
    mac = matrix.run.machines["mx-uefi-http"].mac
    # OVMF booted over HTTP, never by PXE, and fetched iPXE from the URL Slate handed it.
    assert "Start HTTP Boot over IPv4" in console
    assert "Start PXE over IPv4" not in console
    assert HTTP_URL in console  # OVMF prints the URI it downloads
    # The DHCP answer: vendor class HTTPClient and the URL as the boot file.
    http = [r for r in replies_to(matrix.pcap, mac) if r.get(o.VENDOR_CLASS) == b"HTTPClient"]
    assert http, "no DHCP reply with vendor class HTTPClient"
    assert {boot_file(r) for r in http} == {HTTP_URL}
    assert {o.MESSAGE_TYPES[r.message_type or 0] for r in http} >= {"OFFER", "ACK"}
    matrix.run.machines["mx-uefi-http"].stop()
    disk = matrix.run.machines["mx-uefi-http"].disks[0][0]
    hooked = f"hooked mx-uefi-http {steps.SAMPLE_IMAGE}@{fitted}\n"
    fitted_disk_is_sound(matrix, job_id, disk, small, hooked)
    # The NVMe disk this machine restored boots on BIOS (SeaBIOS) too.
    record_figure(
        "matrix-nvme-on-bios", seconds=boots_on(matrix, "bios", disk, "MX-NVME-1", "nvme")
    )


def fitted_disk_is_sound(lab: E2ELab, job_id: int, disk: Path, small: int, hooked: str) -> None:
    """The shrunk partition ends inside the disk, its NTFS volume is clean and holds the
    master's files, and the hook wrote into the restored root (and logged its mounts)."""
    out = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    parts = {p["node"][-1]: p for p in json.loads(out)["partitiontable"]["partitions"]}
    start, size = int(parts["4"]["start"]) * 512, int(parts["4"]["size"]) * 512
    assert start + size <= small
    ntfs = attach(disk, parts["4"])
    try:
        check = subprocess.run(["ntfsfix", "--no-action", ntfs], capture_output=True, text=True)
        got = {r: subprocess.run(["ntfscat", ntfs, r], capture_output=True, check=True)
               .stdout.decode() for r in data_files()}  # fmt: skip
    finally:
        detach(ntfs)
    assert check.returncode == 0, check.stdout + check.stderr
    assert got == data_files()
    root = attach(disk, parts["3"])
    try:
        found = subprocess.run(["debugfs", "-R", "cat /etc/slate-hook", root],
                               capture_output=True, text=True).stdout  # fmt: skip
    finally:
        detach(root)
    assert found == hooked
    log = "\n".join(_job_log(lab, job_id))
    assert "hook 10-lab.sh (host " in log and "hook 10-lab.sh: mounts: /mnt/slate/p" in log, log


def attach(disk: Path, part: dict[str, object]) -> str:
    """A read-only loop device over one partition (sfdisk's sectors of 512 bytes)."""
    start, size = int(str(part["start"])) * 512, int(str(part["size"])) * 512
    return subprocess.run(["losetup", "--find", "--show", "--read-only", "--offset", str(start),
                           "--sizelimit", str(size), str(disk)], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def detach(dev: str) -> None:
    subprocess.run(["losetup", "--detach", dev], check=False)


def from_the_library(lab: MatrixLab, district: District) -> None:
    """The sample version published to a district library — a real SeaweedFS, reached
    through a second leg of the lab appliance's namespace — then removed from the
    appliance's store and its chunks collected: a restore of it now comes from the
    library (read-through, docs/district.md)."""
    assert lab.run.srv is not None and lab.refusal is not None
    srv = lab.run.srv
    district.lab.attach(srv, "wan0", "10.84.0.60/24")
    ref = f"{steps.SAMPLE_IMAGE}@{lab.version}"
    cli = [sys.executable, "-m", "appliance.cli", "--home", str(lab.home)]
    creds = str(district.credentials_file("publisher"))
    for argv in (["library", "add", "district", "s3://library", "--endpoint", district.endpoint,
                  "--credentials", creds, "--publisher"], ["library", "publish", ref]):  # fmt: skip
        done = srv.run([*cli, *argv], check=False, cwd=str(ROOT))
        assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 300  # the 4K cell's job uses the version until it fails
    while steps.job(lab.home, lab.refusal[1]).state not in FINAL:
        assert time.monotonic() < deadline, "the 4K cell's job never ended"
        time.sleep(1)
    steps.slate(lab.home, "image", "rm", ref)
    steps.slate(lab.home, "image", "gc")
    store = Store(Layout(lab.home))
    assert steps.SAMPLE_IMAGE not in store.images()
    assert not any(store.chunk_files())


def test_bios_pxe_chainloads_undionly_and_restores_onto_sata(
    matrix: MatrixLab, tmp_path: Path
) -> None:
    # The version this cell restores came from the district library: the appliance's
    # store held none of it when the job was made.
    with District(tmp_path / "district", schools=(), wan_mbit=None) as district:
        from_the_library(matrix, district)
        assert matrix.run.srv is not None
        console, _ = restore_and_boot(matrix, "mx-bios-undi", "bios", "MX-SATA-1",
                                   netns=matrix.run.srv.name, disk_model="sata")  # fmt: skip
        # Whole here again, committed by the read-through, as the library's state says.
        done = matrix.run.srv.run([sys.executable, "-m", "appliance.cli", "--home",
                                   str(matrix.home), "library", "versions", steps.SAMPLE_IMAGE,
                                   "--json"], check=False, cwd=str(ROOT))  # fmt: skip
        assert done.returncode == 0, done.stderr
        states = {r["version"]: r["state"] for r in json.loads(done.stdout)}
        assert states[matrix.version] == "ready", states
    mac = matrix.run.machines["mx-bios-undi"].mac
    files = [boot_file(r) for r in replies_to(matrix.pcap, mac) if r.get(o.VENDOR_CLASS)]
    script = f"http://{SERVER_IP}:80/boot/{mac}.ipxe"
    # Each boot (restore, then the restored disk): undionly.kpxe first, then the script.
    assert files[:2] == ["undionly.kpxe", "undionly.kpxe"], files
    first_script = files.index(script)
    assert set(files[:first_script]) == {"undionly.kpxe"} and files[first_script + 1] == script
    assert files.count("undionly.kpxe") >= 4, files  # the second boot chainloads again
    serve = matrix.run.log_tail("serve", 400_000)
    assert "sent undionly.kpxe" in serve  # the TFTP transfer finished
    assert "PXE->EB" in console  # undionly.kpxe found the ROM's PXE stack and runs on it
    # The SATA disk this machine restored boots on UEFI (OVMF) too.
    matrix.run.machines["mx-bios-undi"].stop()
    disk = matrix.run.machines["mx-bios-undi"].disks[0][0]
    record_figure(
        "matrix-sata-on-uefi", seconds=boots_on(matrix, "uefi", disk, "MX-SATA-1", "sata")
    )


def start_refusal_cell(lab: E2ELab) -> tuple[Machine, int, float]:
    """Power on a BIOS machine whose only disk is NVMe with 4096-byte blocks, with a
    restore job of the 512-byte-sector sample image naming that disk by serial."""
    m = lab.run.add_machine("mx-nvme4k", "bios", disk_size=lab.image.size, serial="MX-NVME-4K",
                            disk_model="nvme-4k", extra_args=own_uuid())  # fmt: skip
    steps.register(lab.home, [m])
    ref = f"{steps.SAMPLE_IMAGE}@{lab.version}"
    [job_id] = steps.restore(lab.home, [m.name], ref, disk={"serial": "MX-NVME-4K"})
    return m, job_id, lab.start(m)


def test_nvme_disk_with_4k_sectors_is_refused_before_any_write(matrix: MatrixLab) -> None:
    assert matrix.refusal is not None
    m, job_id, _started = matrix.refusal
    deadline = time.monotonic() + RESTORE_TIMEOUT
    while (job := steps.job(matrix.home, job_id)).state not in ("failed", "done", "cancelled"):
        assert time.monotonic() < deadline, f"job {job_id} still {job.state}: {m.console()[-1500:]}"
        time.sleep(1)
    assert job.state == "failed"
    assert "MX-NVME-4K" in job.reason
    assert "4096-byte sectors, the image has 512-byte sectors" in job.reason
    m.stop()
    # Not a byte written: the sparse disk file still has no data blocks at all.
    assert os.stat(m.disks[0][0]).st_blocks == 0


# --- UEFI HTTP boot in proxy mode (the site's DHCP is dnsmasq) -----------------------

MAC_PROXY = "52:54:00:5f:00:01"


def test_uefi_http_boot_in_proxy_mode_beside_dnsmasq(pxe_lab: PxeLab) -> None:
    lab = pxe_lab
    site = lab.lab.add_host("site", "10.78.0.2/24")
    dnsmasq = site.popen(
        ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
         "--bind-interfaces", "--dhcp-range=10.78.0.50,10.78.0.99,1h", "--no-ping",
         f"--dhcp-leasefile={lab.tmp}/dnsmasq.leases"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.procs.append(dnsmasq)
    lab.slate("host", "add", MAC_PROXY, "--name", "http1")
    lab.slate("job", "capture", "--host", "http1", "--image", "lab-test")
    job_id = json.loads(lab.slate("job", "list", "--json"))[0]["id"]
    lab.serve("--dhcp", "proxy")
    machine = lab.machine("http1", "uefi", MAC_PROXY, memory=512, netboot="http")
    machine.start()
    try:
        console = machine.wait_for(lab.MARKER, timeout=240)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{lab.evidence()}") from exc
    assert "Start HTTP Boot over IPv4" in console and "Start PXE" not in console
    assert "/ipxe/snponly.efi" in console
    line = next(x for x in console.splitlines() if lab.MARKER in x)
    assert f"slate.job={job_id}" in line
    log = lab.serve_proc.output() if lab.serve_proc else ""
    assert f"to {MAC_PROXY} (uefi-http)" in log  # Slate's proxy offer to the HTTP client
    assert MAC_PROXY in (lab.tmp / "dnsmasq.leases").read_text()  # the address: dnsmasq's
