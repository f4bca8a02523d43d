"""QEMU machines for the lab and the tests: PXE clients with BIOS, UEFI or Secure Boot.

A :class:`Machine` is one QEMU process, started inside a network namespace (the lab's
bridge namespace, where its tap lives), with its serial console written to a log file
that :meth:`Machine.wait_for` watches.  It is stopped by its PID, never by name::

    with Lab() as lab:
        m = Machine("pc1", firmware="uefi", tap=lab.add_tap(), netns=lab.net,
                    disks=[(disk_img, "SER1")], workdir=tmp)
        m.start()
        m.wait_for("slate-marker", timeout=120)
        m.stop()

Firmware paths (see LAB-NOTES): BIOS = SeaBIOS, the NIC's option ROM is Debian's iPXE
(``-nographic`` makes SeaBIOS mirror the screen to the serial port); UEFI = OVMF with
``romfile=`` empty so OVMF's own PXE client runs (it sends option 93 = 7);
``uefi-sb`` = OVMF with Secure Boot and Microsoft keys enrolled.

``netboot="http"`` makes a UEFI machine boot by UEFI HTTP boot instead of PXE: Debian's
OVMF carries HttpBootDxe (its boot menu lists "UEFI HTTPv4 (MAC:…)" after the PXE
entries), and the fw_cfg files ``opt/org.tianocore/IPv4PXESupport`` and
``IPv6PXESupport`` set to ``n`` remove the PXE entries, so HTTPv4 is the first network
boot option (it DHCPs with vendor class ``HTTPClient:Arch:00016``, option 93 = 16).

Disk models (``disk_models``, one per disk): ``virtio`` (virtio-blk), ``nvme``,
``nvme-4k`` (NVMe with 4096-byte logical blocks) and ``sata`` (an ``ide-hd`` on an AHCI
controller); each carries its serial, which udev reports as the disk's identity.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from appliance.errors import SlateError
from appliance.lab.netns import IP, Netns

Firmware = Literal["bios", "uefi", "uefi-sb"]
Netboot = Literal["pxe", "http"]
QEMU = "qemu-system-x86_64"
OVMF_DIR = Path("/usr/share/OVMF")
OVMF = {
    "uefi": (OVMF_DIR / "OVMF_CODE_4M.fd", OVMF_DIR / "OVMF_VARS_4M.fd"),
    "uefi-sb": (OVMF_DIR / "OVMF_CODE_4M.secboot.fd", OVMF_DIR / "OVMF_VARS_4M.ms.fd"),
}
# NIC models for BIOS machines: both carry Debian's iPXE as option ROM in QEMU.
NIC_DEVICES = {"virtio": "virtio-net-pci", "e1000": "e1000"}
# Disk models: the QEMU device of each (the drive and serial are added per disk).
DISK_DEVICES = {
    "virtio": "virtio-blk-pci",
    "nvme": "nvme",
    "nvme-4k": "nvme,logical_block_size=4096,physical_block_size=4096",
    "sata": "ide-hd,bus=ahci0.{port}",
}
# OVMF without its PXE boot options: the NIC's first boot option is then UEFI HTTPv4.
HTTP_BOOT_ONLY = [
    "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
    "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
]  # fmt: skip


def random_mac() -> str:
    """A locally administered MAC in QEMU's 52:54:00 range."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


class MachineError(SlateError):
    """A lab machine did not start or did not show what was expected."""


class Machine:
    """One QEMU machine.  ``disks`` are ``(path, serial)`` pairs of raw images."""

    def __init__(
        self,
        name: str,
        firmware: Firmware = "bios",
        mac: str | None = None,
        disks: Sequence[tuple[str | os.PathLike[str], str]] = (),
        tap: str | None = None,
        netns: Netns | str | None = None,
        accel: str = "tcg",
        memory: int = 512,
        *,
        nic: str = "virtio",
        workdir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        netboot: Netboot = "pxe",
        disk_models: Sequence[str] = (),
    ) -> None:
        if firmware not in ("bios", "uefi", "uefi-sb"):
            raise MachineError(f"unknown firmware {firmware!r}", hint="use bios, uefi or uefi-sb")
        if nic not in NIC_DEVICES:
            raise MachineError(f"unknown NIC model {nic!r}", hint="use virtio or e1000")
        if netboot not in ("pxe", "http") or (netboot == "http" and firmware == "bios"):
            raise MachineError(
                f"network boot {netboot!r} is not available with {firmware} firmware",
                hint="use pxe, or http with uefi / uefi-sb",
            )
        unknown = [d for d in disk_models if d not in DISK_DEVICES]
        if unknown or len(disk_models) > len(disks):
            raise MachineError(
                f"disk models {list(disk_models)} do not fit {len(disks)} disk(s)",
                hint=f"give at most one model per disk, of {', '.join(DISK_DEVICES)}",
            )
        self.name = name
        self.firmware: Firmware = firmware
        self.mac = (mac or random_mac()).lower()
        self.disks = [(Path(p), s) for p, s in disks]
        self.tap = tap
        self.netns = netns
        self.accel = accel
        self.memory = memory
        self.nic = nic
        # Not a fixed /tmp name: a root process must not follow another user's symlink.
        self.workdir = (
            Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"slate-qemu-{name}-"))
        )
        self.extra_args = list(extra_args)
        self.netboot: Netboot = netboot
        self.disk_models = [*disk_models, *["virtio"] * (len(self.disks) - len(disk_models))]
        self.serial_log = self.workdir / f"{name}.serial.log"
        self.qemu_log = self.workdir / f"{name}.qemu.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # --- command line -------------------------------------------------------------

    def argv(self) -> list[str]:
        """The QEMU command line (without the namespace wrapper)."""
        args = [QEMU, "-name", self.name, "-accel", self.accel, "-m", str(self.memory)]
        if self.accel == "kvm":
            args += ["-cpu", "host"]  # TCG's default model is fine; under KVM use the real CPU
        args += ["-nographic", "-monitor", "none", "-serial", f"file:{self.serial_log}"]
        args += self._firmware_args()
        args += self._net_args()
        if self.netboot == "http":
            args += HTTP_BOOT_ONLY
        if "sata" in self.disk_models:
            args += ["-device", "ahci,id=ahci0"]
        for n, (path, serial) in enumerate(self.disks):
            model = self.disk_models[n]
            device = DISK_DEVICES[model].format(port=self.disk_models[:n].count("sata"))
            args += [
                "-drive",
                f"file={path},if=none,id=d{n},format=raw",
                "-device",
                f"{device},drive=d{n},serial={serial},bootindex={n + 2}",
            ]
        return args + self.extra_args

    def _firmware_args(self) -> list[str]:
        if self.firmware == "bios":
            return []
        code = OVMF[self.firmware][0]
        vars_copy = self.workdir / f"{self.name}.OVMF_VARS.fd"
        machine = "q35"
        args: list[str] = []
        if self.firmware == "uefi-sb":
            machine = "q35,smm=on"
            args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            args += ["-global", "ICH9-LPC.disable_s3=1"]
        return [
            "-machine",
            machine,
            *args,
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_copy}",
        ]

    def _net_args(self) -> list[str]:
        if self.tap is None:
            return ["-nic", "none"]
        netdev = f"tap,id=n0,ifname={self.tap},script=no,downscript=no"
        if self.firmware == "bios":
            device = f"{NIC_DEVICES[self.nic]},netdev=n0,mac={self.mac},bootindex=1"
        else:
            # Empty romfile: OVMF's own PXE client instead of iPXE's EFI ROM.
            device = f"virtio-net-pci,netdev=n0,mac={self.mac},romfile=,bootindex=1"
        return ["-netdev", netdev, "-device", device]

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start QEMU (in ``netns`` if given); returns at once."""
        if self.proc is not None:
            raise MachineError(f"machine {self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.firmware != "bios":
            shutil.copyfile(OVMF[self.firmware][1], self.workdir / f"{self.name}.OVMF_VARS.fd")
        self.serial_log.write_bytes(b"")
        argv = self.argv()
        if isinstance(self.netns, Netns):
            argv = self.netns.argv(argv)
        elif isinstance(self.netns, str):
            argv = [IP, "netns", "exec", self.netns, *argv]
        with open(self.qemu_log, "wb") as log:
            # `ip netns exec` execs QEMU, so this PID is QEMU's own.
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def console(self) -> str:
        """Everything the machine printed on its serial console so far."""
        try:
            return self.serial_log.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, text: str, timeout: float) -> str:
        """Wait until ``text`` appears on the serial console; return the console so far."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.console()
            if text in out:
                return out
            if self.proc is not None and self.proc.poll() is not None:
                raise MachineError(
                    f"machine {self.name} exited (code {self.proc.returncode}) before "
                    f"printing {text!r}",
                    hint=f"QEMU said: {self._qemu_said()} | console tail: {out[-1500:]!r}",
                )
            if time.monotonic() > deadline:
                raise MachineError(
                    f"machine {self.name} did not print {text!r} within {timeout:.0f} s",
                    hint=f"console tail: {out[-2000:]!r}",
                )
            time.sleep(0.25)

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself (the guest powered off); return its code."""
        if self.proc is None:
            raise MachineError(f"machine {self.name} was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise MachineError(
                f"machine {self.name} did not power off within {timeout:.0f} s",
                hint=f"console tail: {self.console()[-1500:]!r}",
            ) from exc

    def _qemu_said(self) -> str:
        try:
            return self.qemu_log.read_text(errors="replace")[-800:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Stop QEMU by its PID (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> Machine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
