"""`slate image import-library DIR` (issue 31): every FOG or Clonezilla image of a
folder, one new version each; a damaged one fails alone, other entries are skipped with
their reason.  The images are made by the real tools with the builders of
test_image_formats (FOG, as FOS does) and test_image_clonezilla (as ``ocs-functions``
does); detection, naming and refusals need only the folders' file names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from appliance.config import Layout
from appliance.store import Store
from appliance.store.import_library import image_name
from appliance.store.verify import verify
from tests.unit.test_image_clonezilla import savedisk
from tests.unit.test_image_formats import fos_capture, mbr_disk

CZ = "2026-12-07-10-img"


def library(tmp: Path) -> Path:
    """lib/: a FOG image (MBR, 2 ext4 + swap, pigz), a Clonezilla savedisk image (two
    disks), a copy of the FOG image with a truncated partclone file, and a text file."""
    lib = tmp / "lib"
    lib.mkdir()
    (tmp / "fog").mkdir()
    disk, parts = mbr_disk(tmp / "fog")
    fos_capture(disk, parts, tmp / "fog" / "images" / "win11", 1, ["pigz", "-c"])
    (tmp / "fog" / "images" / "win11").rename(lib / "win11")
    (tmp / "cz").mkdir()
    img, _src = savedisk(tmp / "cz")
    img.rename(lib / CZ)
    shutil.copytree(lib / "win11", lib / "Broken Image")
    bad = lib / "Broken Image" / "d1p2.img"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size * 2 // 3])
    (lib / "notes.txt").write_text("the images of room 12\n")
    return lib


FOUND_FOG = "FOG image disk 1: MBR, 3 partitions, 2 partclone images (EXTFS, swap)"
FOUND_CZ = [
    "Clonezilla image disk sda: MBR, 4 partitions (EXTFS, swap, dd)",
    "Clonezilla image disk sdb: GPT, 1 partitions (EXTFS)",
]


def test_a_library_of_fog_clonezilla_damaged_and_text(slate, tmp_path: Path, home: Path):
    lib = library(tmp_path)
    proc = slate("image", "import-library", str(lib))
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert "'Broken Image' becomes the image name Broken-Image" in err
    assert f"[1/3] importing {lib / CZ} as {CZ} (Clonezilla image directory)" in err
    assert f"[2/3] importing {lib / 'Broken Image'} as Broken-Image (FOG image directory)" in err
    assert f"[3/3]   {FOUND_FOG}" in err
    assert re.search(r"\[3/3\] win11@\d{8}T\d{6}(\.\d+)?Z: 10\.0 MiB, \d+\.\d MiB added to the"
                     r" store, \d+\.\d s", err), err  # fmt: skip
    assert err.rstrip().endswith("\n2 imported, 1 failed, 1 skipped")
    table = proc.stdout.splitlines()
    assert table[0].split() == ["IMAGE", "FOLDER", "RESULT"]
    rows = {ln.split()[0]: ln for ln in table[2:]}
    assert cells(rows["Broken-Image"])[:2] == ["Broken-Image", str(lib / "Broken Image")]
    assert cells(rows["Broken-Image"])[2].startswith(
        f"failed: {lib / 'Broken Image' / 'd1p2.img'} is truncated or damaged"
    )
    assert re.search(r"new version \d{8}T", rows[CZ]) and re.search(r"new version", rows["win11"])
    assert cells(rows["-"])[1:] == [
        str(lib / "notes.txt"),
        "skipped: not a folder (`slate image import` takes a single image file)",
    ]
    store = Store(Layout(home))
    assert sorted(m.image for m in store.all_manifests()) == [CZ, "win11"]  # none for Broken
    assert verify(store).ok
    assert list((store.root / "tmp").iterdir()) == []

    # again, --json: imported anyway (a new version each; dedup: nothing added)
    proc = slate("image", "import-library", str(lib), "--json")
    assert proc.returncode == 1, proc.stderr
    got = json.loads(proc.stdout)
    for obj in got:  # what changes from run to run, checked, then made literal
        if obj["result"] in ("imported", "failed"):
            assert isinstance(obj["seconds"], float) and obj["seconds"] >= 0
            obj["seconds"] = "S"
        if obj["result"] == "imported":
            assert re.fullmatch(r"\d{8}T\d{6}(\.\d+)?Z", obj["version"])
            obj["version"] = "V"
        if obj["result"] == "failed":
            assert obj["reason"].startswith(f"{lib / 'Broken Image' / 'd1p2.img'} is truncated")
            obj["reason"] = "R"
    common = {"added_mib": None, "found": [], "mib": None, "reason": None, "renamed": False,
              "seconds": "S", "version": "V"}  # fmt: skip
    assert got == [
        {**common, "folder": str(lib / CZ), "format": "clonezilla", "image": CZ,
         "result": "imported", "what": "Clonezilla image directory", "found": FOUND_CZ,
         "mib": 14.0, "added_mib": 0.0},
        {**common, "folder": str(lib / "Broken Image"), "format": "fog",
         "image": "Broken-Image", "renamed": True, "result": "failed", "version": None,
         "what": "FOG image directory", "reason": "R"},
        {**common, "folder": str(lib / "notes.txt"), "format": None, "image": None,
         "result": "skipped", "version": None, "what": None, "seconds": None,
         "reason": "not a folder (`slate image import` takes a single image file)"},
        {**common, "folder": str(lib / "win11"), "format": "fog", "image": "win11",
         "result": "imported", "what": "FOG image directory", "found": [FOUND_FOG],
         "mib": 10.0, "added_mib": 0.0},
    ]  # fmt: skip
    assert len(store.version_ids("win11")) == len(store.version_ids(CZ)) == 2
    assert verify(store).ok


def cells(line: str) -> list[str]:
    """A row of the summary table: its columns, which two spaces or more separate."""
    return re.split(r"\s{2,}", line.strip())


def fake(lib: Path, folder: str, *files: str) -> None:
    """A folder detection takes for an image by its file names (not importable)."""
    (lib / folder).mkdir(parents=True)
    for f in files:
        (lib / folder / f).write_text("")


def test_dry_run_names_only_and_prefix_write_nothing(slate, tmp_path: Path, home: Path):
    lib = tmp_path / "lib"
    fake(lib, "Win 11 Pro", "d1.partitions", "d1.mbr", "d1p1.img")
    fake(lib, "büro..alt", "disk", "parts", "sda-pt.sf")
    fake(lib, "2026-img-enc", "ecryptfs.info")
    fake(lib, "parts-only", "parts", "sda1.ext4-ptcl-img.zst")
    fake(lib, "dev", "0011223344aa")
    proc = slate("image", "import-library", str(lib), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "'Win 11 Pro' becomes the image name Win-11-Pro",
        "'büro..alt' becomes the image name buro.alt",
    ]
    assert [cells(ln) for ln in proc.stdout.splitlines()[2:]] == [
        ["-", f"{lib}/2026-img-enc", "skipped: encrypted Clonezilla image: decrypt it with"
         " Clonezilla first (ocs-decrypt-img), then import the copy"],
        ["Win-11-Pro", f"{lib}/Win 11 Pro", "would import: FOG image directory"],
        ["buro.alt", f"{lib}/büro..alt", "would import: Clonezilla image directory"],
        ["-", f"{lib}/dev", "skipped: not a FOG or Clonezilla image"],
        ["-", f"{lib}/parts-only", "skipped: Clonezilla saveparts image (partitions, no disk):"
         " not implemented yet; import each partclone file with `slate image import`"],
    ]  # fmt: skip
    assert list(home.iterdir()) == []
    proc = slate("image", "import-library", str(lib), "--dry-run", "--json", "--prefix", "fog-",
                 "--only", "Win 11 Pro", "fog-buro.alt")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = [(o["folder"], o["image"], o["renamed"], o["result"]) for o in json.loads(proc.stdout)]
    assert got == [(str(lib / "Win 11 Pro"), "fog-Win-11-Pro", True, "planned"),
                   (str(lib / "büro..alt"), "fog-buro.alt", True, "planned")]  # fmt: skip
    proc = slate("image", "import-library", str(lib), "--dry-run", "--only", "nope")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        f"slate: error: --only nope: no such folder or image name in {lib}"
    )
    assert list(home.iterdir()) == []


def test_two_folders_one_name_refused_before_importing(slate, tmp_path: Path, home: Path):
    lib = tmp_path / "lib"
    fake(lib, "a-first", "d1.partitions")  # would fail if it were imported
    fake(lib, "win 11", "d1.partitions")
    fake(lib, "win_11", "d1.partitions")
    fake(lib, "win-11", "d1.partitions")
    fake(lib, "win11", "d1.partitions")
    proc = slate("image", "import-library", str(lib))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "slate: error: two or more folders would become the same image: win-11 ('win 11',"
        " 'win-11'); nothing was imported",
        "hint: rename one of the folders, or import them apart with --only and --prefix",
    ]
    assert list(home.iterdir()) == []


def test_image_names_made_from_folder_names() -> None:
    assert image_name("win11") == "win11"
    assert image_name("Win 11 Pro (2024)") == "Win-11-Pro-2024-"
    assert image_name("Ünïcödé-Bild") == "Unicode-Bild"
    assert image_name("_old..copy") == "old.copy"
    assert image_name("a/b") == "a-b"
    assert image_name("图像") == ""
    assert image_name("-") == ""
    assert image_name("x" * 80) == "x" * 64
    assert image_name("_old", "fog-") == "fog-_old"
    assert image_name("win11", "fog.") == "fog.win11"
