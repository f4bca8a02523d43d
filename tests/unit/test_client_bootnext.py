"""UEFI BootNext after a restore (bootimage.client.finish.boot_restored_next): the
efibootmgr commands, and that any trouble leaves the firmware's boot order alone.  The
real firmware path (OVMF + efibootmgr in the boot environment) is the UEFI e2e test."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import SlateError
from appliance.formats.manifest import UNUSED, Disk, Partition
from bootimage.client import finish
from bootimage.client.target import BlockTarget, FileTarget

ESP = Partition(2, 2 << 20, 64 << 20, finish.ESP_TYPE.upper(), "EFI", "vfat", "u-esp")
ROOT = Partition(3, 66 << 20, 900 << 20, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "", "ext4", "r")


def disk(table: str = "gpt", parts: tuple[Partition, ...] = (ESP, ROOT)) -> Disk:
    return Disk(index=0, size=1 << 30, table=table, partitions=parts, chunks=(UNUSED,) * 256)


def block(path: str = "/dev/vda") -> BlockTarget:
    target = BlockTarget.__new__(BlockTarget)  # no device is opened: only its path is used
    target.path, target.fd = path, -1
    return target


@pytest.fixture
def efi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    (tmp_path / "efivars").mkdir()
    monkeypatch.setattr(finish, "EFI_DIR", tmp_path)
    monkeypatch.setattr(finish.os.path, "ismount", lambda p: True)
    calls: list[list[str]] = []
    listing = (
        "BootCurrent: 0002\nBootOrder: 0002,0001\n"
        "Boot0001* UEFI Misc Device\tPciRoot(0x0)/Pci(0x3,0x0)\n"
        "Boot0002* UEFI PXEv4 (MAC:525400000001)\tPciRoot(0x0)/Pci(0x2,0x0)\n"
        "Boot0006* Slate restored disk\tHD(2,GPT,u-old)/File(\\EFI\\BOOT\\BOOTX64.EFI)\n"
    )

    def run(cmd: list[str], what: str, **kw: object) -> str:
        calls.append(cmd)
        if "--create-only" in cmd:
            return listing.replace("Boot0006", "Boot0007")
        return listing

    monkeypatch.setattr(finish, "run", run)
    return calls


def test_boot_next_replaces_the_old_entry_and_points_at_the_esp(efi: list[list[str]]) -> None:
    said: list[str] = []
    assert finish.boot_restored_next(block(), disk(), said.append)
    assert efi == [
        ["efibootmgr"],
        ["efibootmgr", "-q", "-b", "0006", "-B"],
        ["efibootmgr", "--create-only", "--disk", "/dev/vda", "--part", "2",
         "--label", "Slate restored disk", "--loader", "\\EFI\\BOOT\\BOOTX64.EFI"],
        ["efibootmgr", "-q", "--bootnext", "0007"],
    ]  # fmt: skip
    assert said == [
        "UEFI: the next boot starts the restored disk once (Boot0007: \\EFI\\BOOT\\BOOTX64.EFI)"
    ]


@pytest.mark.parametrize(
    "target, d",
    [
        (None, disk()),  # a file, not a disk
        ("block", disk(table="mbr")),
        ("block", disk(parts=(ROOT,))),  # no EFI system partition
    ],
)
def test_nothing_is_done_without_a_uefi_gpt_disk(
    efi: list[list[str]], tmp_path: Path, target: str | None, d: Disk
) -> None:
    (tmp_path / "f.img").write_bytes(b"")
    t = block() if target else FileTarget(str(tmp_path / "f.img"))
    assert not finish.boot_restored_next(t, d, lambda _m: None)
    assert efi == []


def test_no_uefi_firmware_means_nothing_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(finish, "EFI_DIR", tmp_path / "absent")
    monkeypatch.setattr(finish, "run", lambda *a, **k: pytest.fail("ran a command"))
    assert not finish.boot_restored_next(block(), disk(), lambda _m: None)


def test_trouble_leaves_the_boot_order_alone(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "efivars").mkdir()
    monkeypatch.setattr(finish, "EFI_DIR", tmp_path)
    monkeypatch.setattr(finish.os.path, "ismount", lambda p: True)

    def run(cmd: list[str], what: str, **kw: object) -> str:
        raise SlateError(f"cannot {what}: efibootmgr exited 2: EFI variables are not supported")

    monkeypatch.setattr(finish, "run", run)
    said: list[str] = []
    assert not finish.boot_restored_next(block(), disk(), said.append)
    assert said and said[0].startswith("UEFI: the next boot follows the firmware's order")
