"""Kernel modules for the RAM disk: the dependency closure of the storage, NIC and
filesystem drivers a restore needs, copied from Debian's kernel package, then depmod.
udev loads them by modalias at boot, so a machine gets exactly the drivers it has."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from appliance.errors import SlateError
from bootimage.builder.kernel import KernelFiles

MODULES: tuple[str, ...] = (
    # storage: virtual, SATA/IDE, NVMe, SCSI/SAS HBAs, USB, MMC
    "virtio_blk",
    "virtio_scsi",
    "virtio_pci",
    "ahci",
    "ata_piix",
    "ata_generic",
    "pata_acpi",
    "nvme",
    "sd_mod",
    "sr_mod",
    "sg",
    "usb_storage",
    "uas",
    "xhci_pci",
    "ehci_pci",
    "ohci_pci",
    "uhci_hcd",
    "megaraid_sas",
    "mpt3sas",
    "mptspi",
    "hpsa",
    "smartpqi",
    "aacraid",
    "vmw_pvscsi",
    "hv_storvsc",
    "sdhci_pci",
    "mmc_block",
    # NICs: virtual and the common wired families
    "virtio_net",
    "e1000",
    "e1000e",
    "igb",
    "igc",
    "ixgbe",
    "i40e",
    "ice",
    "r8169",
    "tg3",
    "bnx2",
    "bnx2x",
    "bnxt_en",
    "atlantic",
    "alx",
    "atl1c",
    "sky2",
    "8139cp",
    "8139too",
    "vmxnet3",
    "hv_netvsc",
    "mlx4_en",
    "mlx5_core",
    "be2net",
    "cdc_ether",
    "r8152",
    "ax88179_178a",
    # filesystems and firmware interfaces the client touches
    "ext4",
    "xfs",  # Linux roots whose identity is set after a restore (issue 13)
    "btrfs",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "fuse",
    "efivarfs",
    "loop",
)


def closure(kernel: KernelFiles, names: Sequence[str]) -> list[Path]:
    """Every module file ``names`` need (missing names are skipped: not every kernel
    builds every driver)."""
    base = kernel.modules_dir.parent.parent.parent  # the tree holding lib/modules/<ver>
    _depmod(base, kernel.version)
    found: set[Path] = set()
    for name in names:
        proc = subprocess.run(
            ["modprobe", "-d", str(base), "-S", kernel.version, "--show-depends", name],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in proc.stdout.splitlines():
            if line.startswith("insmod "):
                found.add(Path(line.split()[1]))
    return sorted(found)


def install_modules(kernel: KernelFiles, root: Path, names: Sequence[str] = MODULES) -> int:
    """Copy the closure of ``names`` into ``root`` and index it; returns the count."""
    files = closure(kernel, names)
    if not (root / "lib").exists():  # merged /usr: depmod -b looks in ROOT/lib/modules
        (root / "lib").symlink_to("usr/lib")
    dest_dir = root / "usr/lib/modules" / kernel.version
    for src in files:
        dest = dest_dir / src.relative_to(kernel.modules_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (kernel.modules_dir / meta).exists():
            shutil.copyfile(kernel.modules_dir / meta, dest_dir / meta)
    _depmod(root, kernel.version)
    return len(files)


def _depmod(base: Path, version: str) -> None:
    proc = subprocess.run(
        ["depmod", "-b", str(base), version], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SlateError(
            f"depmod failed for kernel {version} in {base}: {proc.stderr.strip()[:200]}",
            hint="is kmod installed? (./run install)",
        )
