"""`slate image import` of what technicians already have (issue 31): it recognizes the
source by its content and says what it found, refuses what is not a disk image, and
imports VM disks (qemu-img) — made here by the real tools on small filesystems in
regular files."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.config import Layout
from appliance.errors import UsageError
from appliance.formats.manifest import Manifest
from appliance.store import Store
from appliance.store.exporter import export_image
from appliance.store.importer import import_image
from appliance.store.verify import verify

MIB = 1 << 20
CHUNK = 64 * 1024  # small chunks: a few MiB of disk has many, some of them unused
ENV = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")


def run(*cmd: str, stdin: Path | None = None, stdout: Path | None = None) -> None:
    with (
        open(stdin, "rb") if stdin else open(os.devnull, "rb") as i,
        open(stdout, "wb") if stdout else open(os.devnull, "wb") as o,
    ):
        subprocess.run(cmd, stdin=i, stdout=o, stderr=subprocess.PIPE, check=True, env=ENV)


def tree(path: Path, seed: int) -> Path:
    """Files for a filesystem: text, and random data partclone must carry exactly."""
    path.mkdir()
    rnd = random.Random(seed)  # (seeded: the same files each run)
    (path / "notes.txt").write_text("".join(f"line {i} of {seed}\n" for i in range(3000)))
    (path / "blob.bin").write_bytes(rnd.randbytes(300_000))
    (path / "sub").mkdir()
    (path / "sub" / "small.bin").write_bytes(rnd.randbytes(5000))
    return path


def ext4(path: Path, mib: int, seed: int) -> Path:
    run("truncate", "-s", f"{mib}M", str(path))
    files = tree(path.parent / f"{path.name}.d", seed)
    run("mkfs.ext4", "-q", "-F", "-b", "1024", "-d", str(files), str(path))
    return path


def vfat(path: Path, mib: int, seed: int) -> Path:
    run("truncate", "-s", f"{mib}M", str(path))
    # FAT16: partclone.vfat 0.3.23 saves FAT12 files incompletely (its own restore
    # loses them), so a FAT12 test would only check that Slate is as wrong as it is.
    run("mkfs.vfat", "-F", "16", "-s", "1", "-n", "EFI", "-i", f"{seed:08x}", str(path))
    src = tree(path.parent / f"{path.name}.d", seed)
    run("mcopy", "-s", "-i", str(path), str(src / "notes.txt"), str(src / "sub"), "::/")
    return path


def gpt_disk(tmp: Path, name: str = "disk.img", seed: int = 1) -> Path:
    """A 12 MiB GPT disk: vfat (1-5 MiB) and ext4 (5-11 MiB), placed by offset."""
    disk = tmp / name
    run("truncate", "-s", "12M", str(disk))
    run("sgdisk", "-n1:2048:+4M", "-t1:ef00", "-c1:EFI", "-n2:10240:+6M", "-t2:8300",
        "-c2:root", str(disk))  # fmt: skip
    for fs, at in ((vfat(tmp / f"{name}.p1", 4, seed), 1), (ext4(tmp / f"{name}.p2", 6, seed), 5)):
        run("dd", f"if={fs}", f"of={disk}", "bs=1M", f"seek={at}", "conv=notrunc,sparse")
    return disk


def store_at(tmp: Path) -> Store:
    return Store(Layout(tmp / "home"))


def exported(store: Store, m: Manifest, tmp: Path, disk: int = 0) -> bytes:
    out = tmp / f"out-{m.image}-{disk}.img"
    export_image(store, m, [out], disk=disk, force=True)
    return out.read_bytes()


def partclone_restore(image: Path, out: Path) -> bytes:
    """What partclone itself restores from an (uncompressed) image into a sparse file:
    the used blocks; free blocks are not written (zeros)."""
    run("partclone.restore", "-s", str(image), "-O", str(out), "--restore_raw_file",
        "-f", "0", "-L", str(out) + ".log")  # fmt: skip
    return out.read_bytes()


def assert_clean(store: Store) -> None:
    """A failed import leaves no version, nothing in tmp or sessions, no stray chunk."""
    assert store.all_manifests() == []
    assert list((store.root / "tmp").iterdir()) == []
    assert list((store.root / "sessions").iterdir()) == []
    assert list((store.root / "chunks").rglob("*.zst")) == []
    assert verify(store).ok


# ------------------------------------------------------------------ detection, refusal


def test_recognized_by_content_and_said(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    disk = gpt_disk(tmp_path)
    seen: list[str] = []
    m = import_image(store, [disk], "pc", fmt="auto", found=lambda p, w: seen.append(w)).manifest
    assert seen == ["raw disk, GPT, 2 partitions"]
    assert exported(store, m, tmp_path) == disk.read_bytes()
    fs = ext4(tmp_path / "bare.ext4", 2, seed=3)
    import_image(store, [fs], "fs", fmt="auto", found=lambda p, w: seen.append(w))
    assert seen[-1] == "raw ext4 filesystem (no partition table)"


def _refused(store: Store, path: Path, *words: str) -> UsageError:
    with pytest.raises(UsageError) as err:
        import_image(store, [path], "x", fmt="auto")
    assert str(path) in err.value.message and err.value.hint, err.value.message
    assert "--format raw" in err.value.hint
    for w in words:
        assert w in err.value.message, (w, err.value.message)
    return err.value


def test_what_is_not_a_disk_is_refused_and_format_raw_insists(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    text = tmp_path / "passwd"
    shutil.copyfile("/etc/passwd", text)
    _refused(store, text, "text file")
    iso = tmp_path / "cd.iso"  # an ISO 9660 primary volume descriptor at sector 16
    iso.write_bytes(bytes(0x8000) + b"\x01CD001\x01" + bytes(0x8000 - 8))
    _refused(store, iso, "ISO 9660")
    odd = tmp_path / "odd.img"
    odd.write_bytes(random.Random(1).randbytes(1000) + bytes(3 * 512))
    _refused(store, odd, "not a whole number of 512-byte sectors")
    noise = tmp_path / "noise.img"
    noise.write_bytes(random.Random(2).randbytes(MIB))
    _refused(store, noise, "no partition table and no filesystem")
    gz = tmp_path / "noise.gz"
    gz.write_bytes(gzip.compress(noise.read_bytes()))
    _refused(store, gz, "gzip-compressed", "no partclone image")
    assert_clean(store)
    m = import_image(store, [noise], "raw", fmt="raw").manifest  # --format raw insists
    assert exported(store, m, tmp_path) == noise.read_bytes()


def test_cli_says_what_it_found_and_refuses_with_a_hint(slate, tmp_path: Path, home) -> None:
    disk = gpt_disk(tmp_path)
    proc = slate("image", "import", str(disk), "--name", "pc", check=True)
    assert f"{disk}: raw disk, GPT, 2 partitions" in proc.stderr
    proc = slate("image", "import", "/etc/passwd", "--name", "p")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "slate: error: /etc/passwd is a text file, not a disk image",
        "hint: give a disk image, a VM disk or an image directory; `--format raw` imports it"
        " as a raw disk anyway",
    ]
    slate("image", "import", "/etc/passwd", "--name", "p", "--format", "raw", check=True)


# ------------------------------------------------------------------ VM disks


@pytest.mark.parametrize(
    ("fmt", "opts", "kind"),
    [
        ("vmdk", [], "vmdk"),
        ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk"),  # compressed: converted
        ("vhdx", [], "vhdx"),
        ("vdi", [], "vdi"),
        ("vpc", ["-o", "force_size=on"], "vhd"),
        ("vpc", ["-o", "subformat=fixed,force_size=on"], "vhd"),
    ],
)
def test_vm_disk_imports_byte_identical(tmp_path: Path, fmt: str, opts: list[str], kind: str):
    disk = gpt_disk(tmp_path)
    vm = tmp_path / f"disk.{fmt}"
    run("qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, str(disk), str(vm))
    store = store_at(tmp_path)
    seen: list[str] = []
    m = import_image(store, [vm], "vm", fmt="auto", found=lambda p, w: seen.append(w)).manifest
    assert seen and seen[0].startswith(f"{kind.upper()} VM disk"), seen
    assert exported(store, m, tmp_path) == disk.read_bytes()
    assert (m.disks[0].table, len(m.disks[0].partitions)) == ("gpt", 2)
    assert list((store.root / "tmp").iterdir()) == []  # a scratch copy is gone again
