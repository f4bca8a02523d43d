"""Debian's kernel for the boot environment (and for other parts' test VMs).

``fetch_kernel(cache_dir)`` resolves the metapackage ``linux-image-amd64`` to the real
package it depends on (``linux-image-<release>-amd64``), downloads that with
``apt-get download`` and unpacks it with ``dpkg -x``.  The result is cached under
``cache_dir/kernel/<package>_<version>/`` so repeated calls cost one ``apt-cache`` call.
When apt cannot be asked (no package lists, no registry), the newest cached kernel is
used rather than failing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import NotFound, SlateError

METAPACKAGE = "linux-image-amd64"
_DEP = re.compile(r"^(linux-image-\S+-amd64)\s*\(=\s*([^)\s]+)\s*\)")


@dataclass(frozen=True)
class KernelFiles:
    vmlinuz: Path
    modules_dir: Path  # .../lib/modules/<release>, holding modules.dep etc.
    version: str  # the kernel release, e.g. "6.1.0-26-amd64" (== modules_dir.name)
    package_version: str = ""  # Debian version of the package, e.g. "6.1.112-1"


def fetch_kernel(cache_dir: Path) -> KernelFiles:
    """Debian's current amd64 kernel, downloaded and unpacked once per package version."""
    root = Path(cache_dir) / "kernel"
    root.mkdir(parents=True, exist_ok=True)
    try:
        package, version = resolve_package()
    except SlateError:
        cached = _newest_cached(root)
        if cached is None:
            raise
        return cached
    target = root / f"{package}_{_safe(version)}"
    if not _complete(target):
        _download_and_unpack(package, version, target)
    return _files(target, version)


def resolve_package(meta: str = METAPACKAGE) -> tuple[str, str]:
    """(real package, its version) that apt's candidate of ``meta`` depends on."""
    out = _run(["apt-cache", "show", "--no-all-versions", meta], f"look up {meta}")
    found = parse_depends(out)
    if found:
        return found
    raise NotFound(
        f"apt does not say which kernel package {meta} depends on",
        hint="run `apt-get update` (the package lists may be missing or stale)",
    )


def parse_depends(record: str) -> tuple[str, str] | None:
    """The exact-version kernel dependency in an ``apt-cache show`` record."""
    for line in record.splitlines():
        if line.startswith(("Depends:", "Pre-Depends:")):
            for dep in line.split(":", 1)[1].split(","):
                match = _DEP.match(dep.strip())
                if match:
                    return match.group(1), match.group(2)
    return None


def _download_and_unpack(package: str, version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        work = Path(tmp)
        _run(["apt-get", "download", "-q", f"{package}={version}"], f"download {package}", work)
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise NotFound(f"apt-get download left no .deb for {package}={version}")
        unpacked = work / "root"
        _run(["dpkg", "-x", str(debs[0]), str(unpacked)], f"unpack {debs[0].name}")
        (unpacked / ".complete").write_text(f"{package} {version}\n")
        if target.exists():  # a half-finished earlier attempt
            shutil.rmtree(target)
        unpacked.rename(target)


def _files(target: Path, package_version: str) -> KernelFiles:
    kernels = sorted((target / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise NotFound(f"no vmlinuz-* in {target / 'boot'}", hint=f"delete {target} and retry")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    for base in ("lib/modules", "usr/lib/modules"):
        modules = target / base / release
        if modules.is_dir():
            return KernelFiles(kernels[-1], modules, release, package_version)
    raise NotFound(f"no modules for kernel {release} in {target}", hint=f"delete {target}")


def _complete(target: Path) -> bool:
    return (target / ".complete").is_file()


def _newest_cached(root: Path) -> KernelFiles | None:
    done = sorted((p for p in root.iterdir() if _complete(p)), key=lambda p: p.stat().st_mtime)
    if not done:
        return None
    package_version = (done[-1] / ".complete").read_text().split()[-1]
    return _files(done[-1], package_version)


def _safe(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+~-]", "_", version)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise NotFound(
            f"cannot {what}: {cmd[0]} is not installed", hint="run ./run install"
        ) from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SlateError(
            f"cannot {what}: {' '.join(cmd)} failed: {detail[0]}",
            hint="check that apt reaches the Debian mirror (`apt-get update`)",
        )
    return proc.stdout
