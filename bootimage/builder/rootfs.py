"""The user space of the boot environment: a ``debootstrap --variant=minbase`` tree of
Debian with the client's runtime and tools, cached by (suite, mirror, package list), then
stripped of what a RAM disk never needs (docs, locales, apt/dpkg state)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from appliance.errors import NotFound, SlateError

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# python3-cffi-backend must be named or python3-zstandard fails to configure (LAB-NOTES).
PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-pyudev",
    "python3-zstandard",
    "python3-cffi-backend",
    "udev",
    "kmod",
    "iproute2",
    "busybox",
    "partclone",
    "gdisk",
    "fdisk",
    "e2fsprogs",
    "ntfs-3g",
    "dosfstools",
    "efibootmgr",
    # disk health before writing, hardware facts (issue 14); the Windows computer name in
    # the SYSTEM hive (issue 13)
    "smartmontools",
    "dmidecode",
    "python3-hivex",
)
# Removed after debootstrap: a RAM disk needs none of this, and it is most of the size.
STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/i18n",
    "usr/share/lintian",
    "usr/share/common-licenses",
    "usr/share/zoneinfo",
    "usr/share/perl",
    "usr/share/perl5",
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/x86_64-linux-gnu/perl-base",
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/lib/udev/hwdb.bin",
    "etc/udev/hwdb.bin",
    "usr/lib/udev/hwdb.d",
    "var/cache/apt",
    "var/cache/debconf",
    "var/lib/apt",
    "var/lib/dpkg",
    "var/log",
    "usr/lib/python3/dist-packages/pip",
    # Nothing at run time uses apt or perl (its modules are stripped above anyway);
    # together they make room for the compiled Python below.
    "usr/lib/apt",
    "usr/bin/apt*",
    "usr/lib/x86_64-linux-gnu/libapt-*",
    "usr/bin/perl*",
)
# 2: stdlib and dist-packages byte-compiled (compile_python); 3: apt and perl stripped,
# unused stdlib packages left uncompiled.
STRIP_VERSION = "3"
# Stdlib modules the client never imports are not compiled: their pycs would only
# take RAM (the whole initramfs is unpacked into memory; a 448 MiB UEFI machine of the
# lab could no longer unpack it with them).  If one is ever imported, it compiles then.
NOT_COMPILED = (
    r"/usr/lib/python3\.\d+/(test|asyncio|pydoc_data|multiprocessing|unittest|xml|xmlrpc"
    r"|wsgiref|html|lib2to3|idlelib|ensurepip|distutils|tkinter|turtledemo|sqlite3|dbm"
    r"|curses|venv|pydoc\.py|_pydecimal\.py|turtle\.py|doctest\.py|pdb\.py|mailbox\.py"
    r"|encodings/(?!(__init__|aliases|utf_8|utf_8_sig|latin_1|ascii|idna)\.py))"
)
# Where the tree's Python keeps its modules (the client imports from all of them).
PYTHON_DIRS = ("usr/lib/python3", "usr/lib/python3.*")


def rootfs_key(packages: Sequence[str], mirror: str, suite: str = SUITE) -> str:
    text = "\n".join([suite, mirror, STRIP_VERSION, *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_rootfs(
    cache_dir: Path, packages: Sequence[str] = PACKAGES, mirror: str | None = None
) -> Path:
    """The stripped debootstrap tree for ``packages`` (built once, then reused)."""
    mirror = mirror or apt_mirror()
    root = Path(cache_dir) / "rootfs"
    root.mkdir(parents=True, exist_ok=True)
    target = root / rootfs_key(packages, mirror)
    if (target / ".complete").is_file():
        return target
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        tree = Path(tmp) / "tree"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(sorted(packages))}",
            SUITE,
            str(tree),
            mirror,
        ]
        _debootstrap(cmd, Path(tmp))
        strip(tree)
        compile_python(tree)
        (tree / ".complete").write_text(" ".join(sorted(packages)) + "\n")
        if target.exists():
            shutil.rmtree(target)
        tree.rename(target)
    return target


def _debootstrap(cmd: list[str], tmp: Path) -> None:
    log = tmp / "debootstrap.log"
    with log.open("w") as out:
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        except FileNotFoundError as exc:
            raise NotFound("debootstrap is not installed", hint="run ./run install") from exc
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise SlateError(
            f"debootstrap failed (exit {proc.returncode}): {' | '.join(tail)}",
            hint="check that this machine reaches the Debian mirror named in /etc/apt/sources",
        )


def strip(tree: Path) -> None:
    for pattern in STRIP:
        found = tree.glob(pattern) if "*" in pattern else [tree / pattern]
        for path in sorted(found):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    # Caches left by package scripts depend on when they ran: compile_python makes
    # them anew, reproducibly.
    for cache in sorted(tree.glob("usr/lib/python3*/**/__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def compile_python(tree: Path) -> None:
    """Byte-compile the tree's Python modules with the tree's own python3 (chroot), so
    the client does not compile ~80 modules from source at every boot (0.4 s here on a
    real core, seconds under emulation; the RAM disk is never written back).

    Reproducible: one process compiling in sorted order, a fixed hash seed (set
    constants are ordered by hash), and ``unchecked-hash`` pycs (no source mtimes: the
    sources of a boot environment never change).
    """
    dirs = sorted(
        "/" + str(p.relative_to(tree))
        for pattern in PYTHON_DIRS
        for p in tree.glob(pattern)
        if p.is_dir() and not p.is_symlink()
    )
    if not dirs:
        raise SlateError(
            "the boot environment has no Python modules to compile",
            hint="check the package list (python3 must be in it)",
        )
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHASHSEED": "0", "LC_ALL": "C"}
    cmd = ["chroot", str(tree), "python3", "-m", "compileall", "-q", "-j", "1"]
    cmd += ["-x", NOT_COMPILED, "--invalidation-mode", "unchecked-hash", *dirs]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        # compileall exits 1 when a file does not compile (Debian ships a few Python 2
        # leftovers); every other file still got its pyc.  Anything else is a failure.
        failed = [line for line in proc.stdout.splitlines() if line.startswith("***")]
        if proc.returncode != 1 or not failed:
            raise SlateError(
                f"byte-compiling the boot environment failed (exit {proc.returncode}):"
                f" {(proc.stderr or proc.stdout).strip()[-300:]}",
                hint="run the build again with --cache-dir pointing at an empty folder",
            )


_DEB_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)")


def apt_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here (deb822 ``.sources`` or one-line ``.list``)."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or path.suffix not in (".list", ".sources", ""):
            continue
        for uri, suite in _entries(path.read_text(errors="replace"), path.suffix):
            if suite == SUITE and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _entries(text: str, suffix: str) -> list[tuple[str, str]]:
    if suffix != ".sources":
        return [m.groups() for m in map(_DEB_LINE.match, text.splitlines()) if m]  # type: ignore[misc]
    found: list[tuple[str, str]] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                found += [(uri, suite) for suite in fields.get("suites", "").split()]
    return found
