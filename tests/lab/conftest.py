"""Fixtures of the lab tier (QEMU).  Shared file: each part appends its own section.

Expensive things are built once per session and cached between runs (in
``$SLATE_TEST_CACHE``, default /var/cache/slate-tests): the Debian master image and the
boot environment.
"""

from __future__ import annotations

# --- end-to-end lab (H6): one master image, one boot environment, one appliance -------
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.lab import steps
from appliance.lab.harness import LabRun
from appliance.lab.masterimage import MasterImage, build_master_image, default_cache_dir
from appliance.lab.netns import Lab, Netns
from appliance.lab.qemu import Firmware, Machine
from bench.boot_storm import ServeProcess
from tests.conftest import ROOT, require_root

E2E_FIGURES = "e2e-figures.jsonl"
_LOADED_AT = time.time()  # figures of this run are those recorded after this


def _log(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


@pytest.fixture(scope="session")
def master_image() -> MasterImage:
    """The Debian master image (built on the first run, ~5 min; cached after)."""
    require_root()
    return build_master_image(log=_log)


@pytest.fixture(scope="session")
def bootenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the boot environment's ``vmlinuz`` and ``initrd.img``."""
    require_root()
    home = tmp_path_factory.mktemp("bootenv-home")
    return steps.ensure_bootenv(home, _log)


@dataclass
class E2ELab:
    """The session's appliance in its namespace, with the sample image imported."""

    home: Path
    run: LabRun
    image: MasterImage
    version: str
    mine: list[Machine] = field(default_factory=list)

    def machine(self, name: str, firmware: Firmware, **kw: object) -> Machine:
        if "disk" not in kw and "disk_size" not in kw:
            kw["disk_size"] = self.image.size
        m = self.run.add_machine(name, firmware, **kw)  # type: ignore[arg-type]
        self.mine.append(m)
        return m

    def start(self, *machines: Machine) -> float:
        started = time.monotonic()
        for m in machines:
            self.run.start_machine(m.name)
        return started


@pytest.fixture(scope="session")
def e2e_session(
    tmp_path_factory: pytest.TempPathFactory, master_image: MasterImage, bootenv: Path
) -> Iterator[E2ELab]:
    root = tmp_path_factory.mktemp("e2e")
    home = root / "home"
    home.mkdir()
    steps.ensure_bootenv(home, _log, source=bootenv)
    version = steps.ensure_sample_image(home, master_image, _log)
    accel = os.environ.get("SLATE_LAB_ACCEL", "tcg")
    with LabRun(home, root / "work", accel=accel) as run:
        yield E2ELab(home, run, master_image, version)


@pytest.fixture
def e2e(e2e_session: E2ELab) -> Iterator[E2ELab]:
    """The session lab; machines a test adds are stopped when it ends."""
    e2e_session.mine = []
    yield e2e_session
    for m in e2e_session.mine:
        m.stop()


def sha256_file(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        left = limit if limit is not None else 1 << 62
        while left > 0 and (block := fh.read(min(4 << 20, left))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def first_difference(a: Path, b: Path, block: int = 1 << 20) -> int | None:
    """Offset of the first differing MiB of two files (None = equal content)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        offset = 0
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return offset
            if not x:
                return None
            offset += block


def record_figure(name: str, **values: object) -> None:
    """Keep a measured figure (printed at the end of the run, never asserted)."""
    path = default_cache_dir() / E2E_FIGURES
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps({"name": name, "at": time.time(), **values}) + "\n")
    _log(f"figure {name}: {values}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    path = default_cache_dir() / E2E_FIGURES
    if not path.exists():
        return
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["at"] >= _LOADED_AT]
    if rows:
        terminalreporter.section("lab figures (measured, not asserted)")
        for r in rows:
            values = {k: v for k, v in r.items() if k not in ("name", "at")}
            terminalreporter.write_line(f"{r['name']}: {values}")


# --- PXE boot tests (H3b): QEMU machines network-booting from `slate serve` -----------
# * ``lab_cache``: the cache dir (kernels, initramfs images) shared across runs.
# * ``test_kernel``: Debian's kernel (``bootimage.builder.kernel.fetch_kernel``).
# * ``marker_initrd``: a busybox initramfs whose /init prints ``SLATE-MARKER`` and the
#   kernel command line on the serial port, then powers off.
# * ``pxe_lab``: a lab bridge with the server namespace (RA sender running, so iPXE does
#   not wait for IPv6), a data directory whose boot environment is the test kernel +
#   marker initramfs, and helpers to run `slate serve`, the `slate` CLI and machines.

MARKER = "SLATE-MARKER"
LOCAL_MARKER = "SLATE-LOCAL-DISK"
SERVER_IP = "10.78.0.1"

MARKER_INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo "{MARKER} $(/bin/busybox cat /proc/cmdline)" > /dev/ttyS0
/bin/busybox poweroff -f
"""


@pytest.fixture(scope="session")
def lab_cache() -> Path:
    path = default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def test_kernel(lab_cache: Path) -> Path:
    from bootimage.builder.build import cache_lock
    from bootimage.builder.kernel import fetch_kernel

    with cache_lock(lab_cache):  # the lab tier's workers share the cache
        return Path(fetch_kernel(lab_cache).vmlinuz)


@pytest.fixture(scope="session")
def marker_initrd(lab_cache: Path) -> Path:
    """gzip'd newc cpio with busybox and the marker /init (cached by content)."""
    busybox = Path("/bin/busybox")
    key = hashlib.sha256(MARKER_INIT.encode() + busybox.read_bytes()).hexdigest()[:16]
    out = lab_cache / f"marker-initrd-{key}.img"
    if out.exists():
        return out
    tree = lab_cache / f".marker-tree-{os.getpid()}"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(busybox, tree / "bin/busybox")
    (tree / "init").write_text(MARKER_INIT)
    (tree / "init").chmod(0o755)
    names = "\n".join(["init", "bin", "bin/busybox"]) + "\n"
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
        input=names.encode(),
        cwd=tree,
        capture_output=True,
        check=True,
    ).stdout
    tmp = out.with_suffix(f".tmp{os.getpid()}")  # another worker may write it too
    tmp.write_bytes(gzip.compress(cpio, 6))
    tmp.replace(out)
    shutil.rmtree(tree, ignore_errors=True)
    return out


def mbr_marker_disk(path: Path, size: int = 4 << 20) -> Path:
    """A raw disk whose MBR boot sector prints LOCAL_MARKER on COM1 and halts."""
    msg = f"{LOCAL_MARKER}\r\n".encode() + b"\0"
    code = bytes.fromhex(
        "fa"  # cli
        "31c0 8ed8 fc"  # xor ax,ax; mov ds,ax; cld
        "be177c"  # mov si, 0x7c17 (the message below)
        "baf803"  # mov dx, 0x3f8 (COM1)
        "ac 84c0 7403 ee ebf8"  # lodsb; test al,al; jz +3; out dx,al; jmp -8
        "f4 ebfd"  # hlt; jmp -3
    )
    assert len(code) == 0x17
    sector = (code + msg).ljust(510, b"\0") + b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(sector)
        f.truncate(size)
    return path


class PxeLab:
    """One lab bridge, the server namespace, a Slate data directory, and machines."""

    MARKER = MARKER
    LOCAL_MARKER = LOCAL_MARKER

    def __init__(self, tmp: Path, kernel: Path, initrd: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        boot = self.home / "bootimage"
        boot.mkdir(parents=True)
        shutil.copyfile(kernel, boot / "vmlinuz")
        shutil.copyfile(initrd, boot / "initrd.img")
        self.lab = Lab()
        self.machines: list[Machine] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.serve_proc: ServeProcess | None = None
        try:
            self.srv: Netns = self.lab.add_host("srv", f"{SERVER_IP}/24")
            ra = [sys.executable, "-m", "appliance.lab.ra", "eth0"]
            self.procs.append(self.srv.popen(ra, cwd=ROOT))
        except BaseException:
            self.close()
            raise

    def slate(self, *args: str) -> str:
        """Run the `slate` CLI against this lab's data directory; its stdout."""
        proc = subprocess.run(
            [sys.executable, "-m", "appliance.cli", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise AssertionError(f"slate {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def serve(self, *args: str) -> ServeProcess:
        self.serve_proc = ServeProcess(
            self.srv, self.home, "--interface", "eth0", "--verbose", *args
        )
        return self.serve_proc

    def machine(self, name: str, firmware: Firmware, mac: str, **kw: object) -> Machine:
        m = Machine(
            name,
            firmware,
            mac,
            tap=self.lab.add_tap(),
            netns=self.lab.net,
            workdir=self.tmp / "vm",
            **kw,  # type: ignore[arg-type]
        )
        self.machines.append(m)
        return m

    def marker_disk(self, name: str) -> Path:
        """A disk image whose MBR prints LOCAL_MARKER (see :func:`mbr_marker_disk`)."""
        return mbr_marker_disk(self.tmp / name)

    def close(self) -> None:
        for m in self.machines:
            m.stop()
        if self.serve_proc is not None:
            self.serve_proc.stop()
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)
        self.lab.close()

    def evidence(self) -> str:
        """What to print when a boot test fails: the server log and console tails."""
        parts = [self.serve_proc.output()[-4000:] if self.serve_proc else ""]
        parts += [f"--- {m.name}:\n{m.console()[-2000:]}" for m in self.machines]
        return "\n".join(parts)


@pytest.fixture
def pxe_lab(tmp_path: Path, test_kernel: Path, marker_initrd: Path) -> Iterator[PxeLab]:
    require_root()
    lab = PxeLab(tmp_path, test_kernel, marker_initrd)
    try:
        yield lab
    finally:
        lab.close()
