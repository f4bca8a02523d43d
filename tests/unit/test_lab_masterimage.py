"""The master image recipe's pure parts: mirror discovery, cache keys, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import UsageError
from appliance.lab import masterimage
from appliance.lab.masterimage import MasterImageSpec, apt_mirror


def _sources(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "etc/apt" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_mirror_from_deb822_skips_security(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SLATE_DEBIAN_MIRROR", raising=False)
    root = _sources(
        tmp_path,
        {
            "sources.list.d/a-security.sources": "Types: deb\nURIs: http://deb.debian.org/"
            "debian-security\nSuites: bookworm-security\nComponents: main\n",
            "sources.list.d/debian.sources": "Types: deb\nURIs: http://mirror.example/debian/\n"
            "Suites: bookworm bookworm-updates\nComponents: main\n",
        },
    )
    assert apt_mirror(root) == "http://mirror.example/debian"


def test_mirror_from_one_line_style_and_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SLATE_DEBIAN_MIRROR", raising=False)
    root = _sources(
        tmp_path,
        {
            "sources.list": "# comment\n"
            "deb http://security.debian.org/debian-security bookworm-security main\n"
            "deb [arch=amd64] http://ftp.example.org/debian/ bookworm main contrib\n"
        },
    )
    assert apt_mirror(root) == "http://ftp.example.org/debian"
    monkeypatch.setenv("SLATE_DEBIAN_MIRROR", "http://local/debian")
    assert apt_mirror(root) == "http://local/debian"


def test_mirror_default_when_nothing_configured(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SLATE_DEBIAN_MIRROR", raising=False)
    assert apt_mirror(tmp_path) == masterimage.DEFAULT_MIRROR


def test_cache_key_follows_every_input() -> None:
    base = MasterImageSpec(mirror="http://m/debian")
    assert base.key() == MasterImageSpec(mirror="http://m/debian").key()
    others = [
        MasterImageSpec(mirror="http://other/debian"),
        MasterImageSpec(mirror="http://m/debian", marker="x"),
        MasterImageSpec(mirror="http://m/debian", disk_size=2 << 30),
        MasterImageSpec(mirror="http://m/debian", recipe="old"),
    ]
    assert len({base.key(), *(o.key() for o in others)}) == 1 + len(others)


@pytest.mark.parametrize(
    "spec",
    [
        MasterImageSpec(mirror="m", marker="two words"),
        MasterImageSpec(mirror="m", marker=""),
        MasterImageSpec(mirror="m", disk_size=256 << 20),
    ],
)
def test_bad_specs_are_refused(spec: MasterImageSpec) -> None:
    with pytest.raises(UsageError):
        spec.check()


def test_marker_line_is_what_the_script_prints() -> None:
    spec = MasterImageSpec(mirror="m", marker="abc-1")
    image = masterimage.MasterImage(Path("/nonexistent"), spec, "6.1.0", 1.0)
    assert image.marker_line("uefi") == "SLATE-MARKER abc-1 firmware=uefi"
    assert 'echo "SLATE-MARKER $(cat /etc/slate-marker) firmware=$fw $id"' in (
        masterimage.MARKER_SCRIPT
    )
    assert 'id="host=$(cat /etc/hostname) machine-id=$(cat /etc/machine-id)"' in (
        masterimage.MARKER_SCRIPT
    )


def test_identities_read_from_the_console() -> None:
    image = masterimage.MasterImage(Path("/x"), MasterImageSpec(mirror="m", marker="m-1"), "6", 1.0)
    console = (
        "boot...\r\nSLATE-MARKER m-1 firmware=bios host=pc1 machine-id=" + "a" * 32 + "\r\n"
        "SLATE-MARKER m-1 firmware=bios host=pc1 machine-id=" + "a" * 32 + "\n"
    )
    assert image.identities(console) == [("pc1", "a" * 32), ("pc1", "a" * 32)]
    assert image.identities("SLATE-MARKER m-1 firmware=uefi\n") == []


def test_cached_image_is_found_without_building(tmp_path: Path) -> None:
    spec = MasterImageSpec(mirror="http://m/debian")
    folder = tmp_path / f"master-{spec.key()}"
    folder.mkdir()
    (folder / "disk.img").write_bytes(b"\0" * 4096)
    (folder / "image.json").write_text('{"kernel": "6.1.0-x", "build_seconds": 12.5}')
    image = masterimage.build_master_image(spec, tmp_path)
    assert image.path == folder / "disk.img"
    assert image.kernel_version == "6.1.0-x"
    assert image.info()["key"] == spec.key()
