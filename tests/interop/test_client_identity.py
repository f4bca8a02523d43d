"""Each restored machine its own identity: the real client restores a real NTFS volume
with a SYSTEM hive (built with hivexsh) and Linux roots on ext4, xfs and btrfs onto
files, one per machine, and every one ends up with its inventory host name and the
machine-id the appliance keeps for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from client_kit import MAC, MIB, ROOT, ServedHome, log_lines
from identity_kit import (
    HIVE_KEYS,
    hive_value,
    make_linux_disk,
    make_ntfs_disk,
    ntfs_has,
    ntfsfix_clean,
    read_hive,
    read_linux,
    run_with_hivex,
    system_hive,
)

from appliance.machines import Inventory, identity
from appliance.store import Store

MACHINES = {MAC: "pc1", "52:54:00:12:34:57": "pc2", "52:54:00:12:34:58": "lab-pc3"}


def _hosts(app: ServedHome) -> None:
    for mac, name in list(MACHINES.items())[1:]:
        Inventory(app.conn).add_host(mac, name, actor="test")


def _restore(app: ServedHome, host: str, target: Path, tmp: Path) -> list[str]:
    job = app.jobs().restore(host, "lab", actor="test", options={})
    proc = run_with_hivex(app.url, job, app.jobs().token(job.id), target, tmp)
    assert proc.returncode == 0, proc.stderr
    ended = app.job(job.id)
    assert ended.state == "done", ended.reason
    return log_lines(app, job.id)


def _fresh(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_windows_each_machine_gets_its_own_computer_name(tmp_path: Path) -> None:
    hive = tmp_path / "SYSTEM"
    system_hive(hive, "MASTER")
    source = tmp_path / "win.img"
    offset = make_ntfs_disk(source, tmp_path / "mnt", hive)
    with ServedHome(tmp_path / "home") as app:
        _hosts(app)
        app.import_disk(source)
        for mac, name in MACHINES.items():
            target = _fresh(tmp_path / f"{name}.img", 64 * MIB)
            log = _restore(app, name, target, tmp_path)
            assert any(f"identity: Windows on {target} partition 1" in x for x in log), log
            got = read_hive(target, offset, 48 * MIB, tmp_path / f"{name}.SYSTEM")
            for n in (1, 2):
                for key, value in HIVE_KEYS:
                    expected = name.upper() if value == "ComputerName" else name
                    assert hive_value(got, f"ControlSet00{n}\\{key}", value) == expected, mac
            assert "processed successfully" in ntfsfix_clean(target, offset, 48 * MIB)
    # the source image is untouched (a restore writes only the targets)
    assert hive_value(hive, "ControlSet001\\Services\\Tcpip\\Parameters", "Hostname") == "MASTER"


def test_hibernated_windows_is_named_after_ntfs_3g_removes_the_hibernation(
    tmp_path: Path,
) -> None:
    hive = tmp_path / "SYSTEM"
    system_hive(hive, "MASTER", sets=1)
    source = tmp_path / "hib.img"
    offset = make_ntfs_disk(source, tmp_path / "mnt", hive, hibernated=True)
    assert ntfs_has(source, offset, 48 * MIB, "hiberfil.sys")
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        target = _fresh(tmp_path / "t.img", 64 * MIB)
        log = _restore(app, "pc1", target, tmp_path)
    assert any("was hibernated or shut down with Fast Startup" in x for x in log), log
    got = read_hive(target, offset, 48 * MIB, tmp_path / "got.SYSTEM")
    assert hive_value(got, "ControlSet001\\Services\\Tcpip\\Parameters", "Hostname") == "pc1"
    assert not ntfs_has(target, offset, 48 * MIB, "hiberfil.sys")
    assert "processed successfully" in ntfsfix_clean(target, offset, 48 * MIB)


def test_bitlocker_volume_is_left_untouched_and_the_job_says_so(tmp_path: Path) -> None:
    source = tmp_path / "bl.img"
    offset = make_ntfs_disk(source, tmp_path / "mnt", None, bitlocker=True)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        target = _fresh(tmp_path / "t.img", 64 * MIB)
        log = _restore(app, "pc1", target, tmp_path)
    assert any("BitLocker-encrypted: left untouched" in x and "not set" in x for x in log), log
    with source.open("rb") as a, target.open("rb") as b:
        a.seek(offset)
        b.seek(offset)
        assert a.read(48 * MIB) == b.read(48 * MIB)


@pytest.mark.parametrize(("fs", "size"), [("ext4", 64 * MIB), ("xfs", 320 * MIB),
                                          ("btrfs", 128 * MIB)])  # fmt: skip
def test_linux_root_gets_host_name_machine_id_and_host_keys(
    tmp_path: Path, fs: str, size: int
) -> None:
    source = tmp_path / "linux.img"
    mnt = tmp_path / "mnt"
    part = make_linux_disk(source, mnt, fs, size)
    with ServedHome(tmp_path / "home") as app:
        _hosts(app)
        app.import_disk(source)
        seen: dict[str, dict[str, str]] = {}
        for mac, name in list(MACHINES.items())[:2]:
            target = _fresh(tmp_path / f"{name}.img", size)
            log = _restore(app, name, target, tmp_path)
            assert any(f"identity: Linux ({fs}) on {target} partition 1" in x for x in log), log
            got = read_linux(target, mnt, part, fs)
            kept = identity.machine_id(app.conn, mac)
            assert got["etc/hostname"] == f"{name}\n"
            assert f"127.0.1.1\t{name}\n" in got["etc/hosts"]
            assert "master" not in got["etc/hosts"] and "::1\tlocalhost" in got["etc/hosts"]
            assert got["etc/machine-id"] == got["var/lib/dbus/machine-id"] == kept + "\n"
            assert got["keys"] == "ssh_host_ed25519_key ssh_host_ed25519_key.pub"
            assert got["key_mode"] == "0o600"
            key = tmp_path / f"{name}.key"
            key.write_text(got["etc/ssh/ssh_host_ed25519_key"])
            key.chmod(0o600)
            derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True,
                                     text=True, check=True).stdout  # fmt: skip
            assert derived.split()[:2] == got["etc/ssh/ssh_host_ed25519_key.pub"].split()[:2]
            seen[name] = got
        assert seen["pc1"]["etc/machine-id"] != seen["pc2"]["etc/machine-id"]
        if fs == "ext4":  # restored again: the same machine-id (kept), fresh host keys
            _restore(app, "pc1", tmp_path / "pc1.img", tmp_path)
            again = read_linux(tmp_path / "pc1.img", mnt, part, fs)
            assert again["etc/machine-id"] == seen["pc1"]["etc/machine-id"]
            assert again["etc/hostname"] == "pc1\n"
            pub = "etc/ssh/ssh_host_ed25519_key.pub"
            assert again[pub] != seen["pc1"][pub]  # fresh per restore until TLS (docs)


def test_identity_off_for_an_image_leaves_the_system_as_captured(tmp_path: Path) -> None:
    source = tmp_path / "linux.img"
    mnt = tmp_path / "mnt"
    part = make_linux_disk(source, mnt, "ext4", 64 * MIB)
    with ServedHome(tmp_path / "home") as app:
        app.import_disk(source)
        identity.set_image_enabled(app.conn, "lab", False, actor="test")
        target = _fresh(tmp_path / "t.img", 64 * MIB)
        log = _restore(app, "pc1", target, tmp_path)
    assert any("identity: off for this image" in x for x in log), log
    got = read_linux(target, mnt, part, "ext4")
    assert got["etc/hostname"] == "master\n"
    assert got["etc/machine-id"] == "0123456789abcdef0123456789abcdef\n"


def test_capture_refuses_a_bitlocker_volume(tmp_path: Path) -> None:
    source = tmp_path / "bl.img"
    make_ntfs_disk(source, tmp_path / "mnt", None, bitlocker=True)
    with ServedHome(tmp_path / "home") as app:
        job, token = app.capture_job("captured")
        proc = run_with_hivex(app.url, job, token, source, tmp_path)
        assert proc.returncode == 1, proc.stderr
        ended = app.job(job.id)
        assert ended.state == "failed"
        assert "partition 1 of" in ended.reason and "BitLocker-encrypted" in ended.reason
        assert "manage-bde -off" in ended.reason  # the hint
        assert "uploaded" not in proc.stderr  # refused before a chunk was read
        assert Store(app.layout).version_ids("captured") == []


def test_capture_warns_on_a_windows_not_generalized(tmp_path: Path) -> None:
    found: dict[bool, tuple[str, ...]] = {}
    with ServedHome(tmp_path / "home") as app:
        for generalized in (False, True):
            hive = tmp_path / f"SYSTEM-{generalized}"
            system_hive(hive, "MASTER", generalized=generalized)
            source = tmp_path / f"win-{generalized}.img"
            make_ntfs_disk(source, tmp_path / "mnt", hive)
            job, token = app.capture_job(f"win-{str(generalized).lower()}")
            proc = run_with_hivex(app.url, job, token, source, tmp_path)
            assert proc.returncode == 0, proc.stderr
            ended = app.job(job.id)
            assert ended.state == "done", ended.reason
            version = Store(app.layout).version_ids(ended.image or "")[0]
            found[generalized] = Store(app.layout).load(ended.image or "", version).warnings
            ref = f"{ended.image}@{version}"
            show = subprocess.run(
                [sys.executable, "-m", "appliance.cli", "image", "show", ref],
                capture_output=True, text=True, check=True, cwd=ROOT,
                env={**os.environ, "SLATE_HOME": str(app.home)},
            ).stdout  # fmt: skip
            assert ("WARNING  partition 1: this Windows was not generalized" in show) is (
                not generalized
            ), show
            shown = subprocess.run(
                [sys.executable, "-m", "appliance.cli", "image", "show", ref, "--json"],
                capture_output=True, text=True, check=True, cwd=ROOT,
                env={**os.environ, "SLATE_HOME": str(app.home)},
            ).stdout  # fmt: skip
            assert json.loads(shown)["warnings"] == list(found[generalized])
    assert len(found[False]) == 1 and "sysprep /generalize /oobe" in found[False][0]
    assert "cannot authenticate to each other" in found[False][0]
    assert found[True] == ()


def test_identity_on_a_block_device_the_restore_holds_exclusively(tmp_path: Path) -> None:
    """A machine's target is a block device that the restore holds open with O_EXCL
    until it ends: the identity step reads its partitions beside that hold (a second
    exclusive open would be refused, EBUSY, and the machine keep the image's name)."""
    from client_kit import attach, detach

    source = tmp_path / "linux.img"
    mnt = tmp_path / "mnt"
    part = make_linux_disk(source, mnt, "ext4", 64 * MIB)
    with ServedHome(tmp_path / "home") as app:
        _hosts(app)
        app.import_disk(source)
        backing = _fresh(tmp_path / "pc2-disk.img", 64 * MIB)
        dev = attach(backing)
        try:
            log = _restore(app, "pc2", Path(dev), tmp_path)
        finally:
            detach(dev)
        assert any(f"identity: Linux (ext4) on {dev} partition 1" in x for x in log), log
        assert not [x for x in log if "WARNING" in x], log
        assert read_linux(backing, mnt, part, "ext4")["etc/hostname"] == "pc2\n"
