"""Builder inputs: the apt mirror debootstrap uses, the cache keys, and the CLI."""

from __future__ import annotations

from pathlib import Path

from bootimage.builder import build, rootfs


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb deb-src\n# a comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert rootfs.apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_list_and_default(tmp_path: Path) -> None:
    assert rootfs.apt_mirror(tmp_path) == rootfs.DEFAULT_MIRROR
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://ftp.example/debian bookworm main\n"
    )
    assert rootfs.apt_mirror(tmp_path) == "http://ftp.example/debian"


def test_rootfs_key_depends_on_the_package_set_not_its_order() -> None:
    a = rootfs.rootfs_key(["python3", "udev"], "http://m")
    assert a == rootfs.rootfs_key(["udev", "python3"], "http://m")
    assert a != rootfs.rootfs_key(["udev", "python3", "kmod"], "http://m")
    assert a != rootfs.rootfs_key(["udev", "python3"], "http://other")


def test_output_key_covers_kernel_epoch_and_client_files() -> None:
    key = build.input_key("tree", "6.1.1-1", 1700000000)
    assert key == build.input_key("tree", "6.1.1-1", 1700000000)
    assert key != build.input_key("tree", "6.1.2-1", 1700000000)
    assert key != build.input_key("tree", "6.1.1-1", 1700000001)
    files = build.client_files()
    assert "bootimage/client/restore.py" in files and "appliance/formats/chunkio.py" in files
    assert not any(name.startswith(("appliance/http", "appliance/store")) for name in files)


def test_show_without_a_build_says_how_to_build(slate) -> None:
    proc = slate("bootimage", "show")
    assert proc.returncode == 1
    assert "no boot environment" in proc.stderr and "slate bootimage build" in proc.stderr
