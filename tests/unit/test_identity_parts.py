"""Per-machine identity, the pure parts: /etc/hosts rewriting, Windows names, the
BitLocker signature, case-insensitive paths, the Ed25519 host key (checked against
RFC 8032 and ssh-keygen), safe writes into a root, and the appliance's kept facts."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from appliance import db
from appliance.machines import Inventory, identity
from bootimage.client import linuxroot, sshkey, windows

MASTER_HOSTS = "127.0.0.1\tlocalhost\n127.0.1.1\tmaster.lab master\n\n::1\tlocalhost\n"


def test_hosts_line_replaced_in_place() -> None:
    out = linuxroot.hosts_text(MASTER_HOSTS, "pc7")
    assert out == "127.0.0.1\tlocalhost\n127.0.1.1\tpc7\n\n::1\tlocalhost\n"


def test_hosts_line_added_after_localhost_and_duplicates_dropped() -> None:
    assert linuxroot.hosts_text("127.0.0.1 localhost\n", "pc7") == (
        "127.0.0.1 localhost\n127.0.1.1\tpc7\n"
    )
    two = "127.0.1.1 a\n127.0.0.1 localhost\n127.0.1.1 b # old\n"
    assert linuxroot.hosts_text(two, "pc7.lab.example") == (
        "127.0.1.1\tpc7.lab.example pc7\n127.0.0.1 localhost\n"
    )
    assert linuxroot.hosts_text("", "pc7") == "127.0.1.1\tpc7\n"


def test_windows_computer_name_is_the_first_label_upper_case_15_chars() -> None:
    assert windows.netbios_name("lab-pc3") == "LAB-PC3"
    assert windows.netbios_name("physics-room-101-seat-12.school.example") == "PHYSICS-ROOM-10"


def test_bitlocker_signature() -> None:
    assert windows.is_bitlocker(b"\xebR\x90-FVE-FS-" + bytes(500))
    assert not windows.is_bitlocker(b"\xebR\x90NTFS    " + bytes(500))
    assert not windows.is_bitlocker(b"")


def test_find_path_ignores_case(tmp_path: Path) -> None:
    (tmp_path / "WINDOWS/system32/Config").mkdir(parents=True)
    (tmp_path / "WINDOWS/system32/Config/system").write_bytes(b"regf")
    assert windows.find_path(tmp_path, windows.SYSTEM_HIVE) == (
        tmp_path / "WINDOWS/system32/Config/system"
    )
    assert windows.find_path(tmp_path, ("Windows", "Fonts")) is None


def test_ed25519_public_key_matches_rfc8032() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert sshkey.public_key(seed).hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )


def test_host_key_is_one_ssh_keygen_reads(tmp_path: Path) -> None:
    key, pub = sshkey.new_pair("root@pc1")
    path = tmp_path / "ssh_host_ed25519_key"
    path.write_text(key)
    path.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert derived.split()[:2] == pub.split()[:2]
    assert pub.startswith("ssh-ed25519 ") and pub.endswith(" root@pc1\n")
    assert sshkey.new_pair("x")[1] != sshkey.new_pair("x")[1]


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    (root / "etc/hosts").write_text(MASTER_HOSTS)
    (root / "etc/ssh/sshd_config").write_text("")
    (root / "etc/ssh/ssh_host_rsa_key").write_text("secret")
    return root


def test_linux_root_identity_written(tmp_path: Path) -> None:
    root = _root(tmp_path)
    lines: list[str] = []
    failed = linuxroot.apply(root, "pc7", "ab" * 16, lines.append)
    assert failed == []
    assert (root / "etc/hostname").read_text() == "pc7\n"
    assert (root / "etc/machine-id").read_text() == "ab" * 16 + "\n"
    assert oct((root / "etc/machine-id").stat().st_mode & 0o777) == "0o444"
    assert sorted(p.name for p in (root / "etc/ssh").glob("ssh_host_*")) == [
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
    ]
    assert any("ssh_host_rsa_key" in line for line in lines)  # said what was removed
    assert not (root / "var/lib/dbus").exists()  # written only where it is a file


def test_dbus_machine_id_written_when_a_file_left_alone_when_a_link(tmp_path: Path) -> None:
    root = _root(tmp_path)
    dbus = root / "var/lib/dbus"
    dbus.mkdir(parents=True)
    (dbus / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    assert linuxroot.apply(root, "pc7", "ab" * 16, print) == []
    assert (dbus / "machine-id").read_text() == "ab" * 16 + "\n"
    (dbus / "machine-id").unlink()
    (dbus / "machine-id").symlink_to("../../../etc/machine-id")  # Debian's own layout
    lines: list[str] = []
    assert linuxroot.apply(root, "pc8", "cd" * 16, lines.append) == []
    assert os.readlink(dbus / "machine-id") == "../../../etc/machine-id"
    assert (dbus / "machine-id").read_text() == "cd" * 16 + "\n"  # through /etc/machine-id
    assert not any("dbus" in line for line in lines)


def test_symlinks_are_not_followed_out_of_the_root(tmp_path: Path) -> None:
    root = _root(tmp_path)
    outside = tmp_path / "boot-environment-hostname"
    outside.write_text("bootenv\n")
    (root / "etc/hostname").symlink_to(outside)
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/dbus").symlink_to(tmp_path)  # a directory link that leaves the root
    (tmp_path / "machine-id").write_text("outside\n")
    lines: list[str] = []
    failed = linuxroot.apply(root, "pc7", "ab" * 16, lines.append)
    assert failed == ["/etc/hostname", "/var/lib/dbus/machine-id"]
    assert outside.read_text() == "bootenv\n"
    assert (tmp_path / "machine-id").read_text() == "outside\n"
    assert any("WARNING: /etc/hostname not set: /etc/hostname is a symlink" in x for x in lines)


def test_btrfs_subvolume_roots(tmp_path: Path) -> None:
    (tmp_path / "@/etc").mkdir(parents=True)
    (tmp_path / "@/etc/os-release").write_text("")
    (tmp_path / "@home").mkdir()
    assert linuxroot.roots_in(tmp_path) == [tmp_path / "@"]


@pytest.fixture
def conn(tmp_path: Path):  # type: ignore[no-untyped-def]
    conn = db.connect(tmp_path / "slate.db")
    inv = Inventory(conn)
    inv.add_host("aa:bb:cc:00:00:01", "pc1", actor="test")
    inv.add_host("aa:bb:cc:00:00:02", "pc2", actor="test")
    return conn


def test_machine_id_made_once_per_machine_and_kept(conn) -> None:  # type: ignore[no-untyped-def]
    first = identity.machine_id(conn, "aa:bb:cc:00:00:01")
    assert re.fullmatch("[0-9a-f]{32}", first)
    assert identity.machine_id(conn, "aa:bb:cc:00:00:01") == first
    assert identity.machine_id(conn, "aa:bb:cc:00:00:02") != first
    got = identity.for_restore(conn, "aa:bb:cc:00:00:01", "pc1", "win11")
    assert got.to_dict() == {
        "enabled": True,
        "hostname": "pc1",
        "machine_id": first,
        "ssh_host_keys": "fresh",
    }
    Inventory(conn).remove_host("pc1", actor="test")  # the machine's facts go with it
    assert conn.execute("SELECT COUNT(*) FROM host_identity").fetchone()[0] == 1


def test_identity_off_per_image(conn) -> None:  # type: ignore[no-untyped-def]
    assert identity.image_enabled(conn, "win11")
    identity.set_image_enabled(conn, "win11", False, actor="tech")
    assert not identity.image_enabled(conn, "win11")
    assert identity.image_enabled(conn, "ubuntu")
    off = identity.for_restore(conn, "aa:bb:cc:00:00:01", "pc1", "win11")
    assert off.to_dict()["enabled"] is False and off.machine_id == ""
    row = conn.execute("SELECT actor, action, target, detail FROM audit"
                       " WHERE action='image.identity'").fetchone()  # fmt: skip
    assert tuple(row) == ("tech", "image.identity", "win11", "off")


def test_not_a_host_gets_no_kept_identity(conn) -> None:  # type: ignore[no-untyped-def]
    got = identity.for_restore(conn, "aa:bb:cc:00:00:99", "aa:bb:cc:00:00:99", "win11")
    assert got.enabled is False
