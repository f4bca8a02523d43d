"""The initramfs packer is reproducible and writes what the kernel unpacks."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path

from bootimage.builder.cpio import CpioWriter, Node


def _tree(root: Path, stamp: int) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    (root / "b").write_text("second")
    for path in (root / "usr/bin/tool", root / "b"):
        os.utime(path, (stamp, stamp))


def _pack(roots: list[Path], **kw) -> bytes:
    out = io.BytesIO()
    writer = CpioWriter(out, mtime=1700000000)
    writer.add_trees(roots, **kw)
    writer.finish()
    return out.getvalue()


def test_same_tree_same_bytes_whatever_the_file_times(tmp_path: Path) -> None:
    _tree(tmp_path / "one", 1)
    _tree(tmp_path / "two", 999999)
    assert _pack([tmp_path / "one"]) == _pack([tmp_path / "two"])


def test_archive_unpacks_with_cpio_and_overlay_wins(tmp_path: Path) -> None:
    _tree(tmp_path / "base", 1)
    (tmp_path / "over/usr/bin").mkdir(parents=True)
    (tmp_path / "over/usr/bin/tool").write_text("replaced")
    (tmp_path / "base/skip-me").write_text("x")
    console = Node("dev/console", stat.S_IFCHR | 0o600, (5, 1))
    data = _pack([tmp_path / "base", tmp_path / "over"], extra=(console,), exclude=["skip-me"])
    listing = subprocess.run(
        ["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True
    ).stdout.decode()
    assert listing.split() == ["b", "bin", "dev/console", "usr", "usr/bin", "usr/bin/tool"]
    dest = tmp_path / "out"
    dest.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/*"],
        input=data,
        cwd=dest,
        check=True,
    )
    assert (dest / "usr/bin/tool").read_text() == "replaced"
    assert os.readlink(dest / "bin") == "usr/bin"
    assert not (dest / "skip-me").exists()
