"""Test systems for the identity tests: a real SYSTEM hive (a minimal hive written here,
its keys added by hivexsh), an NTFS disk holding it, Linux roots on ext4/xfs/btrfs,
and the restore client run with Debian's python3-hivex importable."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from client_kit import MIB, ROOT, attach, client_argv, detach

from appliance.jobs import Job

DIST = Path("/usr/lib/python3/dist-packages")
IDENTITY_FILES = (
    "etc/hostname",
    "etc/hosts",
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    "etc/ssh/ssh_host_ed25519_key",
    "etc/ssh/ssh_host_ed25519_key.pub",
)
HIVE_KEYS = (
    ("Control\\ComputerName\\ComputerName", "ComputerName"),
    ("Control\\ComputerName\\ActiveComputerName", "ComputerName"),
    ("Services\\Tcpip\\Parameters", "Hostname"),
    ("Services\\Tcpip\\Parameters", "NV Hostname"),
)


def minimal_hive() -> bytes:
    """A registry hive holding only its root key: the regf header and one hbin with the
    root key (nk), its security descriptor (sk) and a free cell — what hivex's own
    ``images/minimal`` is, which Debian does not ship."""

    def cell(payload: bytes) -> bytes:
        size = (4 + len(payload) + 7) // 8 * 8
        return struct.pack("<i", -size) + payload + bytes(size - 4 - len(payload))

    root_off, name = 0x20, b"ROOT"
    sd = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 0)  # self-relative, no ACLs
    sk_off = root_off + (4 + 0x4C + len(name) + 7) // 8 * 8
    none = 0xFFFFFFFF
    nk = struct.pack(
        "<2sHQIIIIIIIIIIIIIIIHH",
        b"nk", 0x2C, 0, 0, none, 0, 0, none, none, 0, none, sk_off, none,
        0, 0, 0, 0, 0, len(name), 0,
    ) + name  # fmt: skip
    sk = struct.pack("<2sHIIII", b"sk", 0, sk_off, sk_off, 1, len(sd)) + sd
    cells = cell(nk) + cell(sk)
    free = 0x1000 - 0x20 - len(cells)
    hbin = b"hbin" + struct.pack("<IIQQI", 0, 0x1000, 0, 0, 0) + cells
    hbin += struct.pack("<i", free) + bytes(free - 4)
    head = bytearray(0x1000)
    struct.pack_into("<4sIIQIIIIIII", head, 0, b"regf", 1, 1, 0, 1, 3, 0, 1, root_off, 0x1000, 1)
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(head[:0x1FC])):
        checksum ^= word
    struct.pack_into("<I", head, 0x1FC, checksum)
    return bytes(head) + hbin


def system_hive(path: Path, name: str, *, sets: int = 2, generalized: bool | None = None) -> None:
    """A SYSTEM hive with the computer-name keys in ControlSet001..00N, named ``name``,
    and (unless None) Setup\\Status\\SysprepStatus\\GeneralizationState 7 or 3."""
    path.write_bytes(minimal_hive())
    script: list[str] = []
    made: set[str] = set()
    by_key: dict[str, list[str]] = {}
    for key, value in HIVE_KEYS:
        by_key.setdefault(key, []).append(value)
    for n in range(1, sets + 1):
        for key, values in by_key.items():  # setval replaces all of a key's values
            script += _add_path(f"ControlSet{n:03d}\\{key}", made)
            script.append(f"setval {len(values)}")
            for value in values:
                script += [value, f"string:{name}"]
    if generalized is not None:
        script += _add_path("Setup\\Status\\SysprepStatus", made)
        script += ["setval 1", "GeneralizationState", f"dword:{7 if generalized else 3:#x}"]
    script.append("commit")
    subprocess.run(
        ["hivexsh", "-w", str(path)], input="\n".join(script) + "\n", text=True, check=True
    )


def _add_path(key: str, made: set[str]) -> list[str]:
    """hivexsh lines that make ``key`` (adding what ``made`` lacks) the current key."""
    out = ["cd \\"]
    parts = key.split("\\")
    for i, part in enumerate(parts):
        path = "\\".join(parts[: i + 1])
        out += ([] if path in made else [f"add {part}"]) + [f"cd {part}"]
        made.add(path)
    return out


def hive_value(path: Path, key: str, value: str) -> str:
    return subprocess.run(
        ["hivexget", str(path), key, value], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_ntfs_disk(
    path: Path, mnt: Path, hive: Path | None, *, bitlocker: bool = False, hibernated: bool = False
) -> int:
    """A 64 MiB GPT disk whose partition 1 (48 MiB at 1 MiB) is NTFS, holding ``hive`` as
    Windows/System32/config/SYSTEM; ``bitlocker``: then given BitLocker's signature;
    ``hibernated``: a hiberfil.sys with a hibernation header (what ntfs-3g checks).
    Returns the partition's byte offset."""
    with path.open("wb") as f:
        f.truncate(64 * MIB)
    subprocess.run(["sgdisk", "-n1:2048:+48M", "-t1:0700", str(path)], check=True,
                   capture_output=True)  # fmt: skip
    dev = attach(path, MIB, 48 * MIB)
    try:
        subprocess.run(["mkfs.ntfs", "-Q", "-F", dev], check=True, capture_output=True)
        if hive is not None:
            with ntfs(dev, mnt):
                config = mnt / "Windows" / "System32" / "config"
                config.mkdir(parents=True)
                (config / "SYSTEM").write_bytes(hive.read_bytes())
                if hibernated:
                    (mnt / "hiberfil.sys").write_bytes(b"HIBR" + bytes(8188))
    finally:
        detach(dev)
    if bitlocker:
        with path.open("r+b") as f:
            f.seek(MIB + 3)
            f.write(b"-FVE-FS-")
    return MIB


class ntfs:  # a context manager, used like a function
    """ntfs-3g mounted in the foreground; unmounting waits until it has written all."""

    def __init__(self, dev: str, mnt: Path, *opts: str) -> None:
        self.dev, self.mnt, self.opts = dev, mnt, ["no_detach", *opts]

    def __enter__(self) -> Path:
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["ntfs-3g", "-o", ",".join(self.opts), self.dev, str(self.mnt)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(600):
            if os.path.ismount(self.mnt):
                return self.mnt
            assert self.proc.poll() is None, "ntfs-3g exited"
            subprocess.run(["sleep", "0.05"], check=True)
        raise AssertionError("ntfs-3g did not mount")

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", str(self.mnt)], check=True)
        self.proc.wait(timeout=60)


def read_hive(disk: Path, offset: int, size: int, out: Path) -> Path:
    dev = attach(disk, offset, size)
    try:
        data = subprocess.run(
            ["ntfscat", dev, "Windows/System32/config/SYSTEM"], capture_output=True, check=True
        ).stdout
    finally:
        detach(dev)
    out.write_bytes(data)
    return out


def ntfs_has(disk: Path, offset: int, size: int, name: str) -> bool:
    dev = attach(disk, offset, size)
    try:
        proc = subprocess.run(["ntfsls", dev], capture_output=True, text=True, check=True)
    finally:
        detach(dev)
    return name in proc.stdout.split()


def ntfsfix_clean(disk: Path, offset: int, size: int) -> str:
    dev = attach(disk, offset, size)
    try:
        proc = subprocess.run(["ntfsfix", "-n", dev], capture_output=True, text=True)
    finally:
        detach(dev)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def hivex_path(tmp: Path) -> Path:
    """A directory holding only Debian's python3-hivex, for PYTHONPATH (the .venv does not
    see Debian's packages; the boot environment has python3-hivex installed)."""
    where = tmp / "hivex-only"
    where.mkdir(exist_ok=True)
    for item in [DIST / "hivex", *DIST.glob("libhivexmod*.so")]:
        link = where / item.name
        if not link.exists():
            link.symlink_to(item)
    assert (where / "hivex").exists(), "python3-hivex is not installed (./run install)"
    return where


def run_with_hivex(
    url: str, job: Job, token: str, disk: Path, tmp: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(hivex_path(tmp))}
    return subprocess.run(
        client_argv(url, job, token, disk, *extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )


def make_linux_disk(path: Path, mnt: Path, fs: str, size: int) -> int:
    """A GPT disk whose partition 1 (from 1 MiB to the end) is a Linux root of ``fs``
    named 'master', as a reference machine leaves it.  Returns the partition's size."""
    with path.open("wb") as f:
        f.truncate(size)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(path)], check=True,
                   capture_output=True)  # fmt: skip
    part = size - 2 * MIB  # sgdisk leaves the last MiB for the backup table
    dev = attach(path, MIB, part)
    try:
        mkfs = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"],
                "btrfs": ["mkfs.btrfs", "-q", "-f"]}[fs]  # fmt: skip
        subprocess.run([*mkfs, dev], check=True, capture_output=True)
        mnt.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", dev, str(mnt)], check=True)
        try:
            root = mnt
            if fs == "btrfs":  # Ubuntu's layout: the root is the '@' subvolume
                subprocess.run(["btrfs", "-q", "subvolume", "create", str(mnt / "@")], check=True)
                root = mnt / "@"
            for d in ("etc/ssh", "var/lib/dbus", "usr/lib"):
                (root / d).mkdir(parents=True)
            (root / "usr/lib/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
            (root / "etc/os-release").symlink_to("../usr/lib/os-release")
            (root / "etc/hostname").write_text("master\n")
            (root / "etc/hosts").write_text(
                "127.0.0.1\tlocalhost\n127.0.1.1\tmaster\n\n::1\tlocalhost ip6-localhost\n"
            )
            (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
            (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
            (root / "etc/ssh/sshd_config").write_text("# the image's\n")
            for kind in ("rsa", "ecdsa", "ed25519"):
                (root / f"etc/ssh/ssh_host_{kind}_key").write_text("the master's secret\n")
                (root / f"etc/ssh/ssh_host_{kind}_key.pub").write_text(f"ssh-{kind} AAAA master\n")
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(dev)
    return part


def read_linux(path: Path, mnt: Path, part: int, fs: str) -> dict[str, str]:
    """The identity files of the restored root, and the host keys' names."""
    dev = attach(path, MIB, part)
    try:
        opts = ["-o", "ro,nouuid"] if fs == "xfs" else ["-o", "ro"]
        subprocess.run(["mount", *opts, dev, str(mnt)], check=True)
        try:
            root = mnt / "@" if fs == "btrfs" else mnt
            out = {rel: (root / rel).read_text() for rel in IDENTITY_FILES}
            out["keys"] = " ".join(sorted(p.name for p in (root / "etc/ssh").glob("ssh_host_*")))
            out["key_mode"] = oct((root / "etc/ssh/ssh_host_ed25519_key").stat().st_mode & 0o777)
            return out
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        detach(dev)


__all__ = ["sys"]
