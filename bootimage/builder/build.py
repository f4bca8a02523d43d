"""``slate bootimage build``: kernel + initramfs of the boot environment, cached.

The output is a function of its inputs — the debootstrap tree (keyed by package list),
the kernel package version, the module list, the client's source files, /init — and is
reproducible: files in byte order, owner root, one mtime (SOURCE_DATE_EPOCH), zstd at a
fixed level and worker count.  A build whose inputs match a cached result copies it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

import appliance
import bootimage
from appliance.errors import SlateError
from appliance.formats import cpio
from bootimage.builder import initscript, modules, rootfs
from bootimage.builder.kernel import KernelFiles, fetch_kernel

BUILDER_VERSION = "3"  # 2: the client is byte-compiled; 3: UNPACKED is the last file
ZSTD_LEVEL = 15
ZSTD_THREADS = 2  # fixed: the frame layout must not depend on the machine
DEFAULT_EPOCH = 1700000000
BUDGET = 60 * 2**20
KEEP = 3  # cached outputs kept (each ~45 MB); older keys are removed after a build


@dataclass(frozen=True)
class BuildResult:
    vmlinuz: Path
    initrd: Path
    key: str
    cached: bool
    kernel_version: str


def client_files() -> dict[str, Path]:
    """Files the client needs at runtime, by their path under /opt/slate."""
    files: dict[str, Path] = {}
    app_root = Path(appliance.__file__).parent
    boot_root = Path(bootimage.__file__).parent
    for path in [app_root / "__init__.py", app_root / "errors.py", *app_root.glob("formats/*.py")]:
        files[f"appliance/{path.relative_to(app_root)}"] = path
    for path in [boot_root / "__init__.py", *boot_root.glob("client/*.py")]:
        files[f"bootimage/{path.relative_to(boot_root)}"] = path
    return dict(sorted(files.items()))


def input_key(rootfs_key: str, kernel_package_version: str, epoch: int) -> str:
    digest = hashlib.sha256()
    for part in (
        BUILDER_VERSION,
        rootfs_key,
        kernel_package_version,
        str(epoch),
        str(ZSTD_LEVEL),
        " ".join(modules.MODULES),
        initscript.INIT,
    ):
        digest.update(part.encode() + b"\0")
    for name, path in client_files().items():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


@contextlib.contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """The cache to oneself: two builds at once (two test workers, two terminals) would
    debootstrap into, pack into and prune the same folders.  Not re-entrant."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def build(out_dir: Path, cache_dir: Path, log: Callable[[str], None] = print) -> BuildResult:
    with cache_lock(cache_dir):
        return _build(out_dir, cache_dir, log)


def _build(out_dir: Path, cache_dir: Path, log: Callable[[str], None]) -> BuildResult:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    log("kernel: resolving Debian's linux-image-amd64")
    kernel = fetch_kernel(cache_dir)
    mirror = rootfs.apt_mirror()
    log(f"rootfs: debootstrap {rootfs.SUITE} from {mirror} (cached by package list)")
    tree = rootfs.build_rootfs(cache_dir, rootfs.PACKAGES, mirror)
    key = input_key(tree.name, kernel.package_version, epoch)
    cached_dir = cache_dir / "bootimage" / key
    cached = (cached_dir / "initrd.img").is_file()
    if not cached:
        log(f"initramfs: packing for kernel {kernel.version}")
        _pack(tree, kernel, cached_dir, epoch, log)
    else:
        log(f"initramfs: inputs unchanged, reusing {cached_dir}")
    _publish(cached_dir, out_dir, key, kernel.version)
    _prune(cached_dir.parent, keep=KEEP)
    return BuildResult(out_dir / "vmlinuz", out_dir / "initrd.img", key, cached, kernel.version)


# The initramfs's last file: present only if the kernel unpacked the whole archive (it
# holds the archive's size).  bootimage/client/main.py checks it before any job.
UNPACKED = "/.slate-unpacked"


def _pack(
    tree: Path, kernel: KernelFiles, dest: Path, epoch: int, log: Callable[[str], None]
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".pack-") as tmp:
        # The overlay holds what is added to the cached tree; the tree is packed as is.
        overlay = Path(tmp) / "overlay"
        overlay.mkdir()
        count = modules.install_modules(kernel, overlay)
        log(f"initramfs: {count} kernel modules")
        _install_client(overlay)
        log(f"initramfs: {_compile_client(tree, overlay)}")
        raw = io.BytesIO()
        archive([tree, overlay], raw, epoch)
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, threads=ZSTD_THREADS, write_checksum=True
        )
        packed = zstandard.ZstdCompressor(compression_params=params).compress(raw.getvalue())
        mib = len(raw.getvalue()) / 2**20
        log(f"initramfs: {mib:.0f} MiB cpio -> {len(packed) / 2**20:.1f} MiB zstd")
        out = Path(tmp) / "out"
        out.mkdir()
        (out / "initrd.img").write_bytes(packed)
        shutil.copyfile(kernel.vmlinuz, out / "vmlinuz")
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)


def archive(roots: list[Path], out: io.BytesIO, epoch: int) -> None:
    """The initramfs's cpio archive of ``roots`` (later ones overlay earlier ones), with
    the device nodes /init needs, and :data:`UNPACKED` last of all: the kernel unpacks in
    order and stops where a machine's memory ends, so the client knows it has every file
    only when that one is there."""
    writer = cpio.CpioWriter(out, epoch)
    devices = (
        cpio.Node("dev/console", stat.S_IFCHR | 0o600, (5, 1)),
        cpio.Node("dev/null", stat.S_IFCHR | 0o666, (1, 3)),
    )
    writer.add_trees(roots, devices, exclude=[".complete", UNPACKED[1:]])
    writer.entry(UNPACKED[1:], stat.S_IFREG | 0o644, b"%d\n" % out.tell())
    writer.finish()


def _install_client(stage: Path) -> None:
    for name, src in client_files().items():
        target = stage / "opt/slate" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    init = stage / "init"
    init.write_text(initscript.INIT)
    init.chmod(0o755)
    (stage / "etc").mkdir(exist_ok=True)
    (stage / "etc/machine-id").write_text("")
    (stage / "etc/hostname").write_text("slate\n")


# Run in a fresh interpreter with a fixed hash seed: the same sources give the same
# bytes (set constants are ordered by hash).  argv: (source, pyc, name) triples.
_COMPILE = """
import py_compile, sys
args = sys.argv[1:]
for src, pyc, name in zip(args[0::3], args[1::3], args[2::3]):
    py_compile.compile(src, cfile=pyc, dfile=name, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def _compile_client(tree: Path, stage: Path) -> str:
    """Byte-compile the client under /opt/slate for the tree's Python, when this
    Python makes the same bytecode (same magic number); else the client compiles
    itself at boot (slower start, same result)."""
    stdlib = sorted(tree.glob("usr/lib/python3.*/__pycache__/os.*.pyc"))
    if not stdlib:
        return "client not byte-compiled: the tree's Python has no compiled modules"
    tag = stdlib[0].name.split(".")[1]  # cpython-311
    if stdlib[0].read_bytes()[:4] != importlib.util.MAGIC_NUMBER:
        return f"client not byte-compiled: this Python's bytecode differs from {tag}'s"
    args: list[str] = []
    for name in client_files():
        src = stage / "opt/slate" / name
        pyc = src.parent / "__pycache__" / f"{src.stem}.{tag}.pyc"
        args += [str(src), str(pyc), f"/opt/slate/{name}"]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _COMPILE, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SlateError(
            f"byte-compiling the client failed: {proc.stderr.strip()[-300:]}",
            hint="check that the client's sources are valid Python for the boot environment",
        )
    return f"client byte-compiled for {tag}"


def _prune(root: Path, keep: int) -> None:
    done = [p for p in root.iterdir() if (p / "initrd.img").is_file()]
    done.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in done[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _publish(src: Path, out_dir: Path, key: str, kernel_version: str) -> None:
    """Copy into the appliance's bootimage dir atomically (the HTTP server may be serving)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz", "initrd.img"):
        tmp = out_dir / f".{name}.tmp"
        shutil.copyfile(src / name, tmp)
        tmp.replace(out_dir / name)
    info = {
        "key": key,
        "kernel": kernel_version,
        "built": int(time.time()),
        "initrd_bytes": (out_dir / "initrd.img").stat().st_size,
    }
    (out_dir / "build.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
