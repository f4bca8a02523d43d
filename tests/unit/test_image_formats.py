"""`slate image import` of what technicians already have (issue 31): it recognizes the
source by its content and says what it found, refuses what is not a disk image, and
imports VM disks (qemu-img), partclone images (compressed, split) and FOG image
directories — all made here by the real tools (qemu-img, partclone, sfdisk, sgdisk,
pigz, zstd, xz, lz4) on small filesystems in regular files."""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.config import Layout
from appliance.errors import IntegrityError, SlateError, UsageError
from appliance.formats.manifest import UNUSED, Manifest
from appliance.store import Store
from appliance.store.exporter import export_image
from appliance.store.importer import import_image
from appliance.store.verify import verify

MIB = 1 << 20
CHUNK = 64 * 1024  # small chunks: a few MiB of disk has many, some of them unused
SWAP_UUID = "0b6d2f8e-7a51-4c3e-9f0a-2d9c8e4b1a77"
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


# ------------------------------------------------------------------ partclone


def partclone_image(tmp: Path, fs: Path, tool: str, *extra: str) -> Path:
    img = tmp / f"{fs.name}.ptcl"
    # -f 0: no progress updates (partclone sleeps up to one interval, 2 s, at the end)
    run(f"partclone.{tool}", "-c", "-s", str(fs), "-O", str(img), "-L", str(img) + ".log",
        "-f", "0", *extra)  # fmt: skip
    return img


@pytest.mark.parametrize(
    ("pack", "suffix"),
    [
        (None, ""),
        (["pigz", "-c"], ".gz"),
        (["zstd", "-q", "-c", "-T0"], ".zst"),
        (["xz", "-c", "-T1"], ".xz"),
        (["lz4", "-q", "-c"], ".lz4"),
    ],
)
def test_partclone_image_used_blocks_only(tmp_path: Path, pack: list[str] | None, suffix: str):
    fs = ext4(tmp_path / "root.ext4", 6, seed=5)
    img = partclone_image(tmp_path, fs, "ext4")
    want = partclone_restore(img, tmp_path / "restored.raw")
    src = img
    if pack:
        src = tmp_path / f"root.ptcl{suffix}"
        run(*pack, str(img), stdout=src)
    store = store_at(tmp_path)
    seen: list[str] = []
    m = import_image(store, [src], "p", fmt="auto", chunk_size=CHUNK,
                     found=lambda p, w: seen.append(w)).manifest  # fmt: skip
    assert seen[0].startswith("partclone image (EXTFS"), seen
    got = exported(store, m, tmp_path)
    assert got == want
    out = tmp_path / "out-p-0.img"  # the files themselves, read back by e2fsprogs
    blob = subprocess.run(["debugfs", "-R", "cat /blob.bin", str(out)], capture_output=True,
                          check=True).stdout  # fmt: skip
    assert blob == (tmp_path / "root.ext4.d" / "blob.bin").read_bytes()
    unused = [i for i, c in enumerate(m.disks[0].chunks) if c == UNUSED]
    assert len(unused) >= 16  # free blocks: unused chunks (never sent, never written)
    assert all(want[i * CHUNK : (i + 1) * CHUNK] == bytes(CHUNK) for i in unused)


def test_partclone_vfat_split_in_parts(tmp_path: Path) -> None:
    """A vfat image (scattered clusters), zstd-compressed and split like Clonezilla does
    (``split -b … -a 2``: .aa .ab …), and uncompressed split like FOG (``-a 3 -d``)."""
    fs = vfat(tmp_path / "efi.vfat", 4, seed=6)
    img = partclone_image(tmp_path, fs, "vfat")
    want = partclone_restore(img, tmp_path / "restored.raw")
    zst = tmp_path / "efi.vfat-ptcl-img.zst"
    run("zstd", "-q", "-c", "-1", str(img), stdout=zst)
    run("split", "-b", "2k", str(zst), f"{zst}.")
    run("split", "-a", "3", "-d", "-b", "16k", str(img), f"{tmp_path / 'd1p1.img'}.")
    assert (tmp_path / f"{zst.name}.ab").exists() and (tmp_path / "d1p1.img.001").exists()
    store = store_at(tmp_path)
    for n, first in enumerate([Path(f"{zst}.aa"), tmp_path / "d1p1.img.000"]):
        m = import_image(store, [first], f"s{n}", fmt="auto", chunk_size=CHUNK).manifest
        assert exported(store, m, tmp_path) == want
    small = subprocess.run(["mcopy", "-i", str(tmp_path / "out-s1-0.img"), "::/sub/small.bin",
                            "-"], capture_output=True, check=True).stdout  # fmt: skip
    assert small == (tmp_path / "efi.vfat.d" / "sub" / "small.bin").read_bytes()


# ------------------------------------------------------------------ FOG


def fos_capture(disk: Path, parts: list[Path], image: Path, n: int, pack: list[str],
                split: bool = False) -> None:  # fmt: skip
    """Save disk ``n`` the way FOS does (fogproject/fos, funcs.sh at 7cb91cd):

    * ``savePartitionTablesAndBootLoaders`` (l. 2067-2121): MBR disks — ``saveGRUB``
      (l. 1819-1843: ``dd if=$disk of=dN.mbr count=$count bs=512``, count = the first
      partition's start, at most 2048) and ``sfdisk -d $disk > dN.partitions``; GPT —
      ``saveGRUB`` then ``sgdisk -b dN.mbr $disk`` and ``sfdisk -d``.
    * ``savePartition`` (l. 2740-2749): ``partclone.$fstype -cs $part -O $fifo -Nf 1 -a0``
      into ``uploadFormat`` (l. 1761-1796): ``pigz $PIGZ_COMP`` or ``zstdmt --rsyncable
      --ultra $PIGZ_COMP`` to ``dNpM.img.000`` (renamed ``dNpM.img``), or through
      ``split -a 3 -d -b 200m`` (here 64k) when split.

    Here ``$part`` is the partition's filesystem file (the same bytes; this kernel has
    no partition devices), ``-N -f 1`` (ncurses progress every second) is ``-f 0`` (no
    progress), and the fifo is a temporary file.
    """
    image.mkdir(parents=True, exist_ok=True)
    dump = subprocess.run(["sfdisk", "-d", str(disk)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    (image / f"d{n}.partitions").write_text(dump)
    if "label: gpt" in dump:
        run("dd", f"if={disk}", f"of={image / f'd{n}.mbr'}", "count=2048", "bs=512")
        run("sgdisk", "-b", str(image / f"d{n}.mbr"), str(disk))
    else:
        run("dd", f"if={disk}", f"of={image / f'd{n}.mbr'}", "count=2048", "bs=512")
    for m, (part, tool) in enumerate(((p, p.suffix[1:]) for p in parts), start=1):
        if tool == "swap":  # saveSwapUUID (partition-funcs.sh l. 217-229)
            blkid = ["blkid", "-s", "UUID", "-o", "value", str(part)]
            uuid = subprocess.run(blkid, capture_output=True, text=True, check=True).stdout.strip()
            with open(image / f"d{n}.original.swapuuids", "a") as fh:
                fh.write(f"{m} {uuid}\n")
            continue
        fifo = image.parent / f"fifo-{n}-{m}"
        run(f"partclone.{tool}", "-c", "-s", str(part), "-O", str(fifo), "-a0",
            "-f", "0", "-L", str(fifo) + ".log")  # fmt: skip
        out = image / f"d{n}p{m}.img"
        if split:
            packed = image.parent / f"packed-{n}-{m}"
            run(*pack, stdin=fifo, stdout=packed)
            run("split", "-a", "3", "-d", "-b", "64k", str(packed), f"{out}.")
        else:
            run(*pack, stdin=fifo, stdout=Path(f"{out}.000"))
            os.rename(f"{out}.000", out)


def mbr_disk(tmp: Path) -> tuple[Path, list[Path]]:
    disk = tmp / "mbr.img"
    run("truncate", "-s", "10M", str(disk))
    layout = "label: dos\n2048,4096,83\n6144,12288,83\n18432,,82\n"  # ext4, ext4, swap
    run("sfdisk", "-q", str(disk), stdin=_write(tmp / "mbr.sf", layout))
    p1, p2 = ext4(tmp / "m1.ext4", 2, seed=8), ext4(tmp / "m2.ext4", 6, seed=9)
    run("dd", f"if={p1}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc,sparse")
    run("dd", f"if={p2}", f"of={disk}", "bs=1M", "seek=3", "conv=notrunc,sparse")
    swap = tmp / "m3.swap"
    run("truncate", "-s", "1M", str(swap))
    run("mkswap", "-q", "-U", SWAP_UUID, str(swap))
    run("dd", f"if={swap}", f"of={disk}", "bs=1M", "seek=9", "conv=notrunc")
    with open(disk, "r+b") as fh:  # boot code in the MBR and the gap FOS saves with it
        fh.write(b"\xeb\x63\x90GRUB boot code")
        fh.seek(1 << 15)
        fh.write(b"core.img stand-in " * 100)
    return disk, [p1, p2, swap]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sfdisk_dump(disk: Path) -> list[str]:
    out = subprocess.run(["sfdisk", "-d", str(disk)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [ln.replace(str(disk), "DISK") for ln in out.splitlines()]


def test_fog_image_two_disks_gpt_and_mbr(tmp_path: Path) -> None:
    """A FOG image of two disks: a GPT one through pigz, an MBR one through zstd, split.
    The imported version's tables equal the source's (``sfdisk -d``), every used block
    is what partclone itself restores, the MBR's boot sectors are kept."""
    gpt = gpt_disk(tmp_path)
    gpt_parts = [tmp_path / "disk.img.p1", tmp_path / "disk.img.p2"]
    for p, tool in zip(gpt_parts, ("vfat", "ext4"), strict=True):
        p.rename(p.with_suffix(f".{tool}"))
    gpt_parts = [tmp_path / "disk.img.vfat", tmp_path / "disk.img.ext4"]
    mbr, mbr_parts = mbr_disk(tmp_path)
    image = tmp_path / "images" / "lab"
    fos_capture(gpt, gpt_parts, image, 1, ["pigz", "-6", "-c"])
    fos_capture(mbr, mbr_parts, image, 2, ["zstd", "-q", "--rsyncable", "--ultra", "-3", "-c"],
                split=True)  # fmt: skip
    shutil.copyfile(image / "d1.partitions", image / "d1.minimum.partitions")
    store = store_at(tmp_path)
    seen: list[str] = []
    m = import_image(store, [image], "fog", fmt="auto", chunk_size=CHUNK,
                     found=lambda p, w: seen.append(w)).manifest  # fmt: skip
    assert len(seen) == 2 and seen[0].startswith("FOG image disk 1: GPT, 2 partitions"), seen
    assert seen[1] == "FOG image disk 2: MBR, 3 partitions, 2 partclone images (EXTFS, swap)"
    for n, (disk, parts) in enumerate(((gpt, gpt_parts), (mbr, mbr_parts))):
        out = tmp_path / f"fog-{n}.img"
        export_image(store, m, [out], disk=n, force=True)
        assert sfdisk_dump(out) == sfdisk_dump(disk)  # the same table, ids and all
        got = out.read_bytes()
        table = m.disks[n].partitions
        for part, fs in zip(table, parts, strict=True):
            if fs.suffix == ".swap":  # makeSwapSystem: mkswap -U with the saved UUID
                blkid = ["blkid", "-p", "-O", str(part.start), "-o", "export", str(out)]
                info = subprocess.run(blkid, capture_output=True, text=True).stdout
                assert f"UUID={SWAP_UUID}" in info and "TYPE=swap" in info, info
                continue
            pc = partclone_image(tmp_path, fs, fs.suffix[1:])
            want = partclone_restore(pc, tmp_path / f"want-{n}-{part.number}.raw")
            assert got[part.start : part.start + part.size] == want, (n, part.number)
        assert UNUSED in m.disks[n].chunks
        if disk == mbr:  # boot code and the gap before the first partition, as saved
            assert got[: 1 << 20] == mbr.read_bytes()[: 1 << 20]


def test_fog_raw_type_is_one_partclone_imager_file(tmp_path: Path) -> None:
    """FOG's "raw" (dd) type: ``savePartition`` runs ``partclone.imager -c`` on the whole
    disk into ``uploadFormat`` (pigz): one file, the disk's table inside."""
    disk = gpt_disk(tmp_path)
    img = partclone_image(tmp_path, disk, "imager")
    packed = tmp_path / "lab-dd"
    run("pigz", "-c", str(img), stdout=packed)
    store = store_at(tmp_path)
    m = import_image(store, [packed], "dd", fmt="auto", chunk_size=CHUNK).manifest
    assert exported(store, m, tmp_path) == disk.read_bytes()
    assert (m.disks[0].table, len(m.disks[0].partitions)) == ("gpt", 2)


# ------------------------------------------------------------------ bad input


def test_truncated_partclone_image(tmp_path: Path) -> None:
    img = partclone_image(tmp_path, ext4(tmp_path / "r.ext4", 4, seed=11), "ext4")
    zst = tmp_path / "r.ptcl.zst"
    run("zstd", "-q", "-c", str(img), stdout=zst)
    zst.write_bytes(zst.read_bytes()[: zst.stat().st_size * 2 // 3])
    store = store_at(tmp_path)
    with pytest.raises(IntegrityError, match="truncated") as err:
        import_image(store, [zst], "t", fmt="auto", chunk_size=CHUNK)
    assert str(zst) in err.value.message
    assert_clean(store)


def test_missing_split_part(tmp_path: Path) -> None:
    img = partclone_image(tmp_path, vfat(tmp_path / "e.vfat", 4, seed=12), "vfat")
    run("split", "-b", "16k", str(img), f"{tmp_path / 'sda1.vfat-ptcl-img'}.")
    assert (tmp_path / "sda1.vfat-ptcl-img.ac").exists()
    (tmp_path / "sda1.vfat-ptcl-img.ab").unlink()
    store = store_at(tmp_path)
    with pytest.raises(IntegrityError) as err:
        import_image(store, [tmp_path / "sda1.vfat-ptcl-img.aa"], "s", fmt="auto")
    assert f"{tmp_path / 'sda1.vfat-ptcl-img.ab'} is missing" in err.value.message
    assert_clean(store)


def test_partclone_checksum_failure(slate, tmp_path: Path, home: Path) -> None:
    img = partclone_image(tmp_path, ext4(tmp_path / "c.ext4", 4, seed=13), "ext4")
    data = bytearray(img.read_bytes())
    data_start = 110 + (4 * 1024 + 7) // 8 + 4  # header, bitmap of 4096 blocks, its CRC
    data[data_start + 1500] ^= 0x40
    img.write_bytes(bytes(data))
    proc = slate("image", "import", str(img), "--name", "c")
    assert proc.returncode == 1
    error, hint = proc.stderr.splitlines()[-2:]
    assert error.startswith(f"slate: error: {img} is damaged: the checksum of the blocks up to")
    assert hint.startswith("hint: ")
    store = Store(Layout(home))
    assert_clean(store)
    assert slate("image", "list", "--json", check=True).stdout.strip() == "[]"


def test_fog_partition_table_not_matching_partitions(tmp_path: Path) -> None:
    mbr, parts = mbr_disk(tmp_path)
    image = tmp_path / "images" / "bad"
    fos_capture(mbr, parts, image, 1, ["pigz", "-c"])
    dump = (image / "d1.partitions").read_text()  # partition 2 recorded 1 MiB smaller
    bad = re.sub(r"size=\s*12288", "size=10240", dump)
    assert bad != dump
    (image / "d1.partitions").write_text(bad)
    store = store_at(tmp_path)
    with pytest.raises(IntegrityError, match="does not match the partition table") as err:
        import_image(store, [image], "f", fmt="auto", chunk_size=CHUNK)
    assert str(image / "d1p2.img") in err.value.message
    assert_clean(store)


def test_encrypted_clonezilla_image_refused_with_a_hint(tmp_path: Path) -> None:
    image = tmp_path / "2026-12-01-10-img-enc"  # what `ocs-sr -enc` leaves in the clear
    image.mkdir()
    (image / "ecryptfs.info").write_text('disk_of_img="sda"\nparts_of_img="sda1"\n')
    (image / "ECRYPTFS_FNEK_ENCRYPTED.FWaL3lA5hZ1zd-TxmfVCq3a6wyqNBk--").write_bytes(b"\x8f" * 64)
    store = store_at(tmp_path)
    with pytest.raises(SlateError, match="encrypted Clonezilla image") as err:
        import_image(store, [image], "e", fmt="auto")
    assert str(image) in err.value.message and "decrypt" in (err.value.hint or "")
    assert_clean(store)
