"""The Vagrant lab for users' workstations: the file is valid for Vagrant itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"


def _validate(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_DEFAULT_PROVIDER="libvirt")  # fmt: skip
    return subprocess.run(
        ["vagrant", "validate"], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def test_vagrantfile_validates(tmp_path: Path) -> None:
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed: `./run install` installs it")
    proc = _validate(VAGRANT_DIR, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_appliance_serves_full_dhcp_on_the_private_network_only() -> None:
    text = (VAGRANT_DIR / "Vagrantfile").read_text()
    assert "./run install" in text
    assert "--dhcp full" in text and "--interface eth1" in text
    assert 'libvirt__forward_mode: "none"' in text and "libvirt__dhcp_enabled: false" in text
