"""The kernel fetcher: apt record parsing and the cache (no download here; the lab tier
fetches the real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootimage.builder import kernel
from bootimage.builder.kernel import KernelFiles, fetch_kernel, parse_depends

RECORD = """Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description: Linux for 64-bit PCs (meta-package)
"""


def test_parse_depends_finds_the_real_package() -> None:
    assert parse_depends(RECORD) == ("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert parse_depends("Package: x\nDepends: libc6 (>= 2)\n") is None


def _fake_tree(root: Path, release: str) -> None:
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{release}").write_bytes(b"kernel")
    (root / "lib" / "modules" / release).mkdir(parents=True)


def test_cached_kernel_is_reused_without_download(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "kernel" / "linux-image-6.1.0-56-amd64_6.1.192-2"
    _fake_tree(target, "6.1.0-56-amd64")
    (target / ".complete").write_text("linux-image-6.1.0-56-amd64 6.1.192-2\n")
    monkeypatch.setattr(
        kernel, "resolve_package", lambda: ("linux-image-6.1.0-56-amd64", "6.1.192-2")
    )

    def no_download(*a: object) -> None:
        raise AssertionError("must not download a cached kernel")

    monkeypatch.setattr(kernel, "_download_and_unpack", no_download)
    files = fetch_kernel(tmp_path)
    assert files == KernelFiles(
        target / "boot" / "vmlinuz-6.1.0-56-amd64",
        target / "lib" / "modules" / "6.1.0-56-amd64",
        "6.1.0-56-amd64",
        "6.1.192-2",
    )


def test_apt_failure_without_cache_is_an_error(tmp_path: Path, monkeypatch) -> None:
    def broken() -> tuple[str, str]:
        raise kernel.SlateError("cannot look up", hint="apt-get update")

    monkeypatch.setattr(kernel, "resolve_package", broken)
    with pytest.raises(kernel.SlateError):
        fetch_kernel(tmp_path)
    target = tmp_path / "kernel" / "linux-image-6.0-amd64_1"
    _fake_tree(target, "6.0-amd64")
    (target / ".complete").write_text("linux-image-6.0-amd64 1\n")
    assert fetch_kernel(tmp_path).version == "6.0-amd64"
