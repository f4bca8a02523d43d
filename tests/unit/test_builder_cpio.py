"""The initramfs packer is reproducible and writes what the kernel unpacks."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path

import pytest

from appliance.formats.cpio import CpioWriter, Node


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


def test_the_initramfs_ends_with_the_file_that_says_it_unpacked_whole(tmp_path: Path) -> None:
    from bootimage.builder import build
    from bootimage.client import main

    (tmp_path / "root/usr/bin").mkdir(parents=True)
    (tmp_path / "root/usr/bin/tool").write_bytes(b"t" * 3000)
    (tmp_path / "root/.slate-unpacked").write_text("stale\n")  # never packed from a tree
    out = io.BytesIO()
    build.archive([tmp_path / "root"], out, 1700000000)
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=out.getvalue(), capture_output=True, check=True
    ).stdout.decode()
    names = listing.split()
    assert names[-1] == ".slate-unpacked" and names.count(".slate-unpacked") == 1
    assert names[:-1] == ["dev/console", "dev/null", "usr", "usr/bin", "usr/bin/tool"]
    assert build.UNPACKED == main.UNPACKED == "/.slate-unpacked"
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=out.getvalue(), cwd=unpacked, check=True)
    size = int((unpacked / ".slate-unpacked").read_text())
    assert out.getvalue().index(b".slate-unpacked") > size > 3000  # written after the rest


def test_a_boot_environment_cut_short_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    from appliance.errors import SlateError
    from bootimage.client import main

    marker = tmp_path / ".slate-unpacked"
    with pytest.raises(SlateError) as refused:
        main.check_unpacked(marker)
    assert refused.value.message.startswith("the boot environment did not unpack whole")
    assert "MiB of memory, too little for it" in refused.value.message
    assert refused.value.hint and "more memory" in refused.value.hint
    marker.write_text("12345\n")
    main.check_unpacked(marker)  # unpacked whole: nothing to say
