"""A real master image for the lab and the demo, built from Debian packages.

One raw GPT disk (default 1 GiB) that boots on BIOS and UEFI machines::

    p1  BIOS boot (1 MiB)          grub-pc core image (grub-install --target=i386-pc)
    p2  EFI system (FAT32)         \\EFI\\BOOT\\BOOTX64.EFI (grub, --removable)
    p3  ext4 root "slate-root"     debootstrapped Debian (minbase + linux-image-amd64)
    p4  NTFS "SLATEDATA"           a few files: Windows-style data

The system's init is ``/usr/local/sbin/slate-marker``: it prints one line
``SLATE-MARKER <text of /etc/slate-marker> firmware=bios|uefi`` on the serial console
and powers off at once, so a lab test knows *which* system booted, on which firmware,
in a few seconds.  Free space is trimmed (the backing file stays sparse), so an import
finds mostly zero chunks.

Built images are cached in ``$SLATE_TEST_CACHE`` (default ``/var/cache/slate-tests``)
under a key of every input; a second build with the same inputs is free.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import SlateError, UsageError

MiB = 1024 * 1024
# Bump when the recipe below changes in a way the spec fields do not capture.
RECIPE = "5"
DEFAULT_CACHE = Path("/var/cache/slate-tests")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MARKER_PREFIX = "SLATE-MARKER"
ROOT_LABEL = "slate-root"
MASTER_HOSTNAME = "slate-lab"  # what an image restored without identity boots as
MASTER_MACHINE_ID = "5a7e1ab0" * 4
_IDENTITY = re.compile(r"^SLATE-MARKER \S+ firmware=\S+ host=(\S*) machine-id=(\S*)", re.M)
DATA_LABEL = "SLATEDATA"

# Kernel module folders a small VM never needs: most of the image's bytes otherwise.
PRUNE_MODULES = (
    "kernel/sound",
    "kernel/drivers/gpu",
    "kernel/drivers/media",
    "kernel/drivers/net/wireless",
    "kernel/drivers/net/ethernet",
    "kernel/drivers/infiniband",
    "kernel/drivers/staging",
    "kernel/drivers/isdn",
    "kernel/drivers/bluetooth",
    "kernel/drivers/iio",
    "kernel/drivers/hid",
    "kernel/drivers/input",
    "kernel/drivers/usb",
    "kernel/drivers/mtd",
    "kernel/drivers/scsi",
    "kernel/net/wireless",
    "kernel/net/mac80211",
    "kernel/net/bluetooth",
    "kernel/fs/ocfs2",
    "kernel/fs/xfs",
    "kernel/fs/btrfs",
)
PRUNE_PATHS = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/lib/firmware",
    "lib/firmware",
)

INITRAMFS_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_scsi", "nvme", "ahci", "sd_mod", "ext4", "crc32c_generic",
)  # fmt: skip

GRUB_EFI_MODULES = (
    "part_gpt", "part_msdos", "ext2", "fat", "search", "search_fs_uuid", "normal",
    "configfile", "linux", "echo", "test", "serial", "terminal", "efi_gop", "gzio",
    "all_video", "boot",
)  # fmt: skip

MARKER_SCRIPT = """#!/bin/sh
# Slate lab system: report which system booted (and on which firmware) on the serial
# console, then power off at once -- the lab test waits for this one line.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
if [ -d /sys/firmware/efi ]; then fw=uefi; else fw=bios; fi
# The identity a restore wrote (issue 13): each machine its own host name and machine-id.
id="host=$(cat /etc/hostname) machine-id=$(cat /etc/machine-id)"
echo "SLATE-MARKER $(cat /etc/slate-marker) firmware=$fw $id"
sync
echo o > /proc/sysrq-trigger
sleep 10
"""

GRUB_CFG = """set default=0
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "Slate lab system" {{
    search --no-floppy --fs-uuid --set=root {uuid}
    linux /boot/vmlinuz-{kver} root=UUID={uuid} ro console=ttyS0,115200 {extra}
    initrd /boot/initrd.img-{kver}
}}
"""

DATA_FILES = {
    "README.TXT": "Slate lab data partition (NTFS), restored with the system.\r\n",
    "Users/Public/Documents/report.txt": "quarterly figures: 1 2 3 5 8 13\r\n",
    "Program Files/Slate/settings.ini": "[lab]\r\nroom=101\r\n",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("SLATE_TEST_CACHE") or DEFAULT_CACHE)


def apt_mirror(root: Path = Path("/")) -> str:
    """The Debian mirror this host's apt uses (``$SLATE_DEBIAN_MIRROR`` wins)."""
    env = os.environ.get("SLATE_DEBIAN_MIRROR")
    if env:
        return env
    sources = [root / "etc/apt/sources.list"]
    sources += sorted((root / "etc/apt/sources.list.d").glob("*"))
    for path in sources:
        with contextlib.suppress(OSError):
            found = _mirror_in(path.read_text(errors="replace"))
            if found:
                return found
    return DEFAULT_MIRROR


def _mirror_in(text: str) -> str | None:
    """The first URI serving the main archive (not -security/-updates) in a sources file."""
    for line in text.splitlines():  # one-line style: deb [opts] URI SUITE COMPONENTS
        m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", line)
        main = m and not re.search(r"-(security|updates|backports)$", m.group(2))
        if m and main and "security" not in m.group(1) and "debian" in m.group(1):
            return m.group(1).rstrip("/")
    for stanza in re.split(r"\n\s*\n", text):  # deb822 style (.sources)
        fields = dict(re.findall(r"(?m)^(\w[\w-]*):\s*(.*)$", stanza))
        uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
        plain = [s for s in suites if "-" not in s]
        if uris and plain and "debian" in uris[0] and "security" not in uris[0]:
            return uris[0].rstrip("/")
    return None


@dataclass(frozen=True)
class MasterImageSpec:
    """Every input of a master image build; the cache key is derived from all of it."""

    marker: str = "slate-master-1"
    suite: str = "bookworm"
    mirror: str = field(default_factory=apt_mirror)
    disk_size: int = 1024 * MiB
    esp_size: int = 48 * MiB
    data_size: int = 32 * MiB
    packages: tuple[str, ...] = ("linux-image-amd64",)
    recipe: str = RECIPE

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", self.marker):
            raise UsageError(
                f"marker {self.marker!r} is not a plain word",
                hint="use letters, digits and . _ : - (at most 64)",
            )
        if self.disk_size < 768 * MiB:
            raise UsageError("the disk must be at least 768 MiB to hold Debian and its kernel")


@dataclass(frozen=True)
class MasterImage:
    """A built image: the raw disk file and what to expect when it boots."""

    path: Path
    spec: MasterImageSpec
    kernel_version: str
    build_seconds: float

    @property
    def marker(self) -> str:
        return self.spec.marker

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def marker_line(self, firmware: str) -> str:
        """The exact line the booted system prints on its serial console."""
        return f"{MARKER_PREFIX} {self.spec.marker} firmware={firmware}"

    def identities(self, console: str) -> list[tuple[str, str]]:
        """(host name, machine-id) of every boot of the system in ``console``, in order."""
        return [(m.group(1), m.group(2)) for m in _IDENTITY.finditer(console)]

    def info(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "marker": self.marker,
            "key": self.spec.key(),
            "kernel": self.kernel_version,
            "build_seconds": round(self.build_seconds, 1),
            "spec": asdict(self.spec),
        }


def build_master_image(
    spec: MasterImageSpec | None = None,
    cache_dir: Path | None = None,
    *,
    log: Any = None,
) -> MasterImage:
    """The master image for ``spec``, from the cache or built now (needs root)."""
    spec = spec or MasterImageSpec()
    spec.check()
    cache = cache_dir or default_cache_dir()
    final = cache / f"master-{spec.key()}"
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f".master-{spec.key()}.lock"):
        if (final / "image.json").exists():
            return _load(final, spec)
        if os.geteuid() != 0:
            raise SlateError(
                "building the master image needs root (loop devices, mounts, debootstrap)",
                hint="run as root, or point SLATE_TEST_CACHE at a cache with a built image",
            )
        _check_space(cache, 3 * 1024 * MiB)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            started = time.monotonic()
            kver = _build(spec, work / "disk.img", cache / "debs", log or _quiet)
            meta = {"kernel": kver, "build_seconds": time.monotonic() - started}
            (work / "image.json").write_text(json.dumps({**meta, "spec": asdict(spec)}))
            shutil.rmtree(final, ignore_errors=True)
            work.rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return _load(final, spec)


def _check_space(folder: Path, need: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SlateError(
            f"only {free // MiB} MiB free in {folder}; building the master image needs "
            f"{need // MiB} MiB",
            hint="free some space or point SLATE_TEST_CACHE at a bigger disk",
        )


def _load(folder: Path, spec: MasterImageSpec) -> MasterImage:
    meta = json.loads((folder / "image.json").read_text())
    return MasterImage(folder / "disk.img", spec, meta["kernel"], meta["build_seconds"])


def _quiet(msg: str) -> None:
    pass


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per key at a time (tests in parallel sessions share the cache)."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], **kw: Any) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise SlateError(
            f"building the master image failed: {' '.join(cmd[:3])} exited "
            f"{proc.returncode}: " + " | ".join(tail),
            hint="check that the Debian mirror is reachable (SLATE_DEBIAN_MIRROR) "
            "and that loop devices work (losetup -f)",
        )
    return proc.stdout


def _build(spec: MasterImageSpec, disk: Path, debs: Path, log: Any) -> str:
    tree = _system_tree(spec, disk.parent.parent / f".tree-{spec.key()}", debs, log)
    kver = _kernel_version(tree)
    with contextlib.ExitStack() as stack:
        log(f"partitioning a {spec.disk_size // MiB} MiB GPT disk")
        _partition(spec, disk)
        loop = _attach(disk, stack)
        root = Path(tempfile.mkdtemp(prefix="slate-master-"))
        stack.callback(root.rmdir)
        _make_filesystems(loop)
        _mount(f"{loop}p3", root, stack)
        _run(["cp", "-a", f"{tree}/.", str(root)])
        log("installing grub for BIOS and UEFI")
        _install_grub(loop, root, kver)
        _run(["fstrim", str(root)])
        _fill_data_partition(f"{loop}p4")
    shutil.rmtree(tree)
    log("image complete")
    return kver


def _system_tree(spec: MasterImageSpec, tree: Path, debs: Path, log: Any) -> Path:
    """The Debian system as a plain folder (kept until the image is complete, so a
    failed later step does not repeat debootstrap).  Built outside the image: the
    kernel package's first initramfs and apt's downloads would not fit its root."""
    done = tree / ".slate-tree-complete"
    if done.exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    log(f"debootstrap {spec.suite} from {spec.mirror} (minbase + {' '.join(spec.packages)})")
    debs.mkdir(parents=True, exist_ok=True)
    _debootstrap(spec, tree, debs)
    kver = _kernel_version(tree)
    _configure(spec, tree)
    log(f"small initramfs for kernel {kver}")
    _run(["chroot", str(tree), "update-initramfs", "-u", "-k", kver])
    _prune(tree)
    done.write_text("")
    return tree


def _partition(spec: MasterImageSpec, disk: Path) -> None:
    with open(disk, "wb") as fh:
        fh.truncate(spec.disk_size)
    _run(
        [
            "sgdisk",
            "-a", "2048",
            "-n", "1:2048:+1M", "-t", "1:EF02", "-c", "1:bios-boot",
            "-n", f"2:0:+{spec.esp_size // MiB}M", "-t", "2:EF00", "-c", "2:esp",
            "-n", f"3:0:-{spec.data_size // MiB}M", "-t", "3:8300", "-c", "3:root",
            "-n", "4:0:0", "-t", "4:0700", "-c", "4:data",
            str(disk),
        ]
    )  # fmt: skip


def _attach(disk: Path, stack: contextlib.ExitStack) -> str:
    loop = _run(["losetup", "--find", "--show", "--partscan", str(disk)]).strip()
    stack.callback(subprocess.run, ["losetup", "-d", loop], capture_output=True)
    for _ in range(10):  # partition nodes appear asynchronously (udev), if at all
        if Path(f"{loop}p4").exists():
            return loop
        time.sleep(0.1)
    _run(["partx", "-u", loop])
    return loop


def _make_filesystems(loop: str) -> None:
    _run(["mkfs.vfat", "-F", "32", "-n", "ESP", f"{loop}p2"])
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            ROOT_LABEL,
            "-m",
            "0",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            f"{loop}p3",
        ]
    )
    _run(["mkntfs", "-Q", "-F", "-L", DATA_LABEL, f"{loop}p4"])


def _mount(dev: str, where: Path, stack: contextlib.ExitStack, *opts: str) -> None:
    _run(["mount", *opts, dev, str(where)])
    stack.callback(_umount, where)


def _umount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _debootstrap(spec: MasterImageSpec, root: Path, debs: Path) -> None:
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={debs}",
            f"--include={','.join(spec.packages)}",
            spec.suite,
            str(root),
            spec.mirror,
        ],
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )


def _kernel_version(root: Path) -> str:
    found = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if not found:
        raise SlateError("debootstrap installed no kernel", hint="include linux-image-amd64")
    return found[-1]


def _configure(spec: MasterImageSpec, root: Path) -> None:
    script = root / "usr/local/sbin/slate-marker"
    script.write_text(MARKER_SCRIPT)
    script.chmod(0o755)
    (root / "etc/slate-marker").write_text(spec.marker + "\n")
    (root / "etc/hostname").write_text(f"{MASTER_HOSTNAME}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{MASTER_HOSTNAME}\n")
    (root / "etc/machine-id").write_text(f"{MASTER_MACHINE_ID}\n")  # the reference machine's
    (root / "etc/fstab").write_text(f"LABEL={ROOT_LABEL} / ext4 defaults 0 1\n")
    # Only what finds the root file system on a virtual or SATA/NVMe disk: a small,
    # fast initramfs (the default MODULES=most is ~10x bigger).
    conf = root / "etc/initramfs-tools"
    (conf / "conf.d/slate").write_text("MODULES=list\nCOMPRESS=gzip\n")
    (conf / "modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")


def _install_grub(loop: str, root: Path, kver: str) -> None:
    boot = root / "boot"
    uuid = _run(["blkid", "-s", "UUID", "-o", "value", f"{loop}p3"]).strip()
    _run(["grub-install", f"--boot-directory={boot}", "--modules=part_gpt ext2",
          "--target=i386-pc", loop])  # fmt: skip
    _install_grub_efi(f"{loop}p2", boot, uuid)
    extra = "init=/usr/local/sbin/slate-marker panic=5"
    (boot / "grub/grub.cfg").write_text(GRUB_CFG.format(uuid=uuid, kver=kver, extra=extra))


def _install_grub_efi(esp: str, boot: Path, uuid: str) -> None:
    """\\EFI\\BOOT\\BOOTX64.EFI on the ESP, written with mtools: what
    ``grub-install --removable`` makes, without mounting FAT (hosts without vfat)."""
    shutil.copytree("/usr/lib/grub/x86_64-efi", boot / "grub/x86_64-efi", dirs_exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="slate-grub-") as tmp:
        early = Path(tmp) / "early.cfg"
        early.write_text(f"search --no-floppy --fs-uuid --set=root {uuid}\n"
                         "set prefix=($root)/boot/grub\n")  # fmt: skip
        image = Path(tmp) / "BOOTX64.EFI"
        _run(["grub-mkimage", "-O", "x86_64-efi", "-o", str(image), "-c", str(early),
              "-p", "/boot/grub", *GRUB_EFI_MODULES])  # fmt: skip
        _run(["mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"])
        _run(["mcopy", "-i", esp, str(image), "::/EFI/BOOT/BOOTX64.EFI"])


def _prune(root: Path) -> None:
    """Drop what a lab VM never reads, so an image import and a restore move less."""
    for rel in PRUNE_PATHS:
        shutil.rmtree(root / rel, ignore_errors=True)
    for moddir in (root / "usr/lib/modules").glob("*"):
        for rel in PRUNE_MODULES:
            shutil.rmtree(moddir / rel, ignore_errors=True)


def _fill_data_partition(dev: str) -> None:
    where = Path(tempfile.mkdtemp(prefix="slate-ntfs-"))
    try:
        _run(["ntfs-3g", dev, str(where)])
        try:
            for rel, text in DATA_FILES.items():
                path = where / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        finally:
            _run(["umount", str(where)])
    finally:
        where.rmdir()


def data_files() -> dict[str, str]:
    """The files the NTFS data partition holds (for tests that read them back)."""
    return dict(DATA_FILES)


def rewrite_marker(disk: Path, marker: str) -> None:
    """Change the word a built system prints (``/etc/slate-marker``) inside a disk file:
    how a test makes a reference machine differ from the master image (needs root)."""
    MasterImageSpec(mirror="-", marker=marker).check()
    with contextlib.ExitStack() as stack:
        loop = _attach(disk, stack)
        where = Path(tempfile.mkdtemp(prefix="slate-marker-"))
        stack.callback(where.rmdir)
        _mount(f"{loop}p3", where, stack)
        (where / "etc/slate-marker").write_text(marker + "\n")
