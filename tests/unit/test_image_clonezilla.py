"""`slate image import DIR` of a Clonezilla ``savedisk`` image directory (issue 31).

The directories here are laid out by running the commands Clonezilla's
``scripts/sbin/ocs-functions`` runs (stevenshiau/clonezilla at 6e6b11e), on disks and
filesystems in regular files — NOT by ``ocs-sr`` itself, which needs partition block
devices this kernel does not have; real ``ocs-sr`` output is not tested yet.

* ``sfdisk -d /dev/$ihd > $ihd-pt.sf`` (l. 9448); ``parted -s … unit s print >
  $ihd-pt.parted`` (l. 9454; parted is not installed here: only its ``Disk`` line,
  written by hand, which is all the import reads);
* GPT: ``dd … of=$ihd-gpt-1st bs=512 count=34`` (l. 9473), ``dd … of=$ihd-gpt-2nd
  skip=$((disk_size_sec-33+1)) bs=512 count=33`` (l. 9490-9491);
* MBR: ``dd … of=$ihd-mbr bs=512 count=1`` (l. 9579), ``save_hidden_data_after_MBR``:
  ``dd … skip=1 bs=512 count=$((start_s-1))`` (l. 582-626);
* ``partclone.$fs … -c -s $dev --output - | $compress_prog_opt`` (l. 1434), split by
  ``split -a 2 -b …MB`` into ``.aa .ab``; ``partclone.dd … -s $dev --output -`` for an
  unknown filesystem (l. 1431) into ``$dev.dd-img.$comp``; swap:
  ``output_swap_partition_uuid_label`` (l. 1151-1175) writes ``UUID="…"`` and
  ``LABEL="…"`` to ``swappt-$dev.info``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.errors import IntegrityError
from appliance.formats.manifest import UNUSED
from appliance.store.exporter import export_image
from appliance.store.importer import import_image
from tests.unit.test_image_formats import (
    CHUNK,
    assert_clean,
    ext4,
    partclone_image,
    partclone_restore,
    run,
    sfdisk_dump,
    store_at,
)

MIB = 1 << 20
SWAP_UUID = "5e3e9c1a-3c2b-4a57-9a4e-8d2f3f1b7c11"


def sh(script: str, cwd: Path) -> None:
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, check=True,
                   capture_output=True)  # fmt: skip


def mbr_disk(tmp: Path) -> tuple[Path, Path]:
    """sda: 1 ext4 (1-5 MiB), 2 swap (5-6 MiB), 3 extended (6-8 MiB) holding 5: data of
    no known filesystem (7-8 MiB; its EBR at 6 MiB); boot code in the MBR and data after
    it (GRUB's core.img's place)."""
    disk = tmp / "sda.img"
    run("truncate", "-s", "8M", str(disk))
    layout = "label: dos\n2048,8192,83\n10240,2048,82\n12288,,5\n14336,,da\n"
    (tmp / "sda.layout").write_text(layout)
    run("sfdisk", "-q", str(disk), stdin=tmp / "sda.layout")
    fs = ext4(tmp / "sda1.fs", 4, seed=21)
    run("dd", f"if={fs}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc")
    run("truncate", "-s", "1M", str(tmp / "sda2.fs"))
    run("mkswap", "-q", "-U", SWAP_UUID, "-L", "swappy", str(tmp / "sda2.fs"))
    run("dd", f"if={tmp / 'sda2.fs'}", f"of={disk}", "bs=1M", "seek=5", "conv=notrunc")
    data = bytes(range(256)) * 2048 + bytes(MIB // 2)  # 512 KiB pattern, 512 KiB zeros
    (tmp / "sda5.fs").write_bytes(data)
    run("dd", f"if={tmp / 'sda5.fs'}", f"of={disk}", "bs=1M", "seek=7", "conv=notrunc")
    with open(disk, "r+b") as fh:
        fh.write(b"\xeb\x63\x90 boot code")
        fh.seek(512 * 40)
        fh.write(b"core.img stand-in " * 50)
    return disk, fs


def gpt_disk(tmp: Path) -> tuple[Path, Path]:
    disk = tmp / "sdb.img"
    run("truncate", "-s", "6M", str(disk))
    run("sgdisk", "-n1:2048:+4M", "-t1:8300", "-c1:data", str(disk))
    fs = ext4(tmp / "sdb1.fs", 4, seed=22)
    run("dd", f"if={fs}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc")
    return disk, fs


def savedisk(tmp: Path) -> tuple[Path, dict[str, Path]]:
    """``ocs-sr savedisk`` of sda (MBR) and sdb (GPT), done by its commands (see above)."""
    sda, sda1 = mbr_disk(tmp)
    sdb, sdb1 = gpt_disk(tmp)
    img = tmp / "partimag" / "2026-12-07-10-img"
    img.mkdir(parents=True)
    (img / "disk").write_text("sda sdb\n")
    (img / "parts").write_text("sda1 sda2 sda5 sdb1\n")
    (img / "clonezilla-img").write_text("This is an image made by Clonezilla.\n")
    for name, disk in (("sda", sda), ("sdb", sdb)):
        sh(f"sfdisk -d {disk} > {img}/{name}-pt.sf", tmp)
        sectors = disk.stat().st_size // 512
        (img / f"{name}-pt.parted").write_text(f"Model:  (file)\nDisk /dev/{name}: {sectors}s\n")
    sh(f"dd if={sda} of={img}/sda-mbr bs=512 count=1", tmp)
    sh(f"dd if={sda} of={img}/sda-hidden-data-after-mbr skip=1 bs=512 count=2047", tmp)
    n = sdb.stat().st_size // 512
    sh(f"dd if={sdb} of={img}/sdb-gpt-1st bs=512 count=34", tmp)
    sh(f"dd if={sdb} of={img}/sdb-gpt-2nd skip={n - 33 + 1} bs=512 count=33", tmp)
    # sda1: partclone.ext4 through zstd; sdb1: uncompressed, split in 1 MB parts
    sh(f"partclone.ext4 -f 0 -L /dev/null -c -s {sda1} --output - | zstd -c -3 -T0"
       f" > {img}/sda1.ext4-ptcl-img.zst", tmp)  # fmt: skip
    sh(f"partclone.ext4 -f 0 -L /dev/null -c -s {sdb1} --output - | cat"
       f" | split -a 2 -b 1MB - {img}/sdb1.ext4-ptcl-img.uncomp.", tmp)  # fmt: skip
    # sda2: swap; sda5: partclone.dd through gzip, split
    (img / "swappt-sda2.info").write_text(f'UUID="{SWAP_UUID}"\nLABEL="swappy"\n')
    sh(f"partclone.dd -f 0 -L /dev/null -s {tmp / 'sda5.fs'} --output - | gzip -c"
       f" | split -a 2 -b 2000 - {img}/sda5.dd-img.gz.", tmp)  # fmt: skip
    assert (img / "sdb1.ext4-ptcl-img.uncomp.ab").exists()
    assert (img / "sda5.dd-img.gz.ab").exists()
    sh("sha256sum sd* > SHA256SUMS", img)
    return img, {"sda": sda, "sdb": sdb, "sda1": sda1, "sdb1": sdb1}


def test_clonezilla_savedisk_two_disks(tmp_path: Path) -> None:
    img, src = savedisk(tmp_path)
    store = store_at(tmp_path)
    seen: list[str] = []
    m = import_image(store, [img], "cz", fmt="auto", chunk_size=CHUNK,
                     found=lambda p, w: seen.append(w)).manifest  # fmt: skip
    assert seen == [
        "Clonezilla image disk sda: MBR, 4 partitions (EXTFS, swap, dd)",
        "Clonezilla image disk sdb: GPT, 1 partitions (EXTFS)",
    ]
    outs = []
    for n, name in enumerate(("sda", "sdb")):
        out = tmp_path / f"out-{name}.img"
        export_image(store, m, [out], disk=n, force=True)
        assert out.stat().st_size == src[name].stat().st_size
        assert sfdisk_dump(out) == [ln.replace(str(src[name]), "DISK") for ln in
                                    sfdisk_dump(src[name])]  # fmt: skip
        outs.append(out.read_bytes())
    sda, sdb = outs
    assert sda[:MIB] == src["sda"].read_bytes()[:MIB]  # MBR and the data after it
    want1 = partclone_restore(partclone_image(tmp_path, src["sda1"], "ext4"), tmp_path / "w1")
    assert sda[MIB : 5 * MIB] == want1
    blkid = subprocess.run(["blkid", "-p", "-O", str(5 * MIB), "-o", "export",
                            str(tmp_path / "out-sda.img")], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert f"UUID={SWAP_UUID}" in blkid and "LABEL=swappy" in blkid and "TYPE=swap" in blkid
    assert sda[7 * MIB :] == (tmp_path / "sda5.fs").read_bytes()
    want2 = partclone_restore(partclone_image(tmp_path, src["sdb1"], "ext4"), tmp_path / "w2")
    assert sdb[MIB : 5 * MIB] == want2
    assert UNUSED in m.disks[0].chunks and UNUSED in m.disks[1].chunks


def test_clonezilla_damaged_file_named_by_its_checksum(tmp_path: Path) -> None:
    img, _src = savedisk(tmp_path)
    with open(img / "sda5.dd-img.gz.ab", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01")
    store = store_at(tmp_path)
    with pytest.raises(IntegrityError, match="sha256 is not the one") as err:
        import_image(store, [img], "cz", fmt="auto")
    assert str(img / "sda5.dd-img.gz.ab") in err.value.message
    assert_clean(store)


def test_clonezilla_parts_not_in_the_partition_table(tmp_path: Path) -> None:
    img, _src = savedisk(tmp_path)
    (img / "SHA256SUMS").unlink()
    (img / "parts").write_text("sda1 sda2 sda4 sda5 sdb1\n")
    store = store_at(tmp_path)
    with pytest.raises(IntegrityError, match="the partition table does not match") as err:
        import_image(store, [img], "cz", fmt="auto")
    assert "sda4" in err.value.message and str(img / "parts") in err.value.message
    assert_clean(store)
