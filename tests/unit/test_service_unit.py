"""packaging/slate.service (issue 27): `systemd-analyze verify` finds nothing to say
about it, it keeps the capabilities Slate needs and no others, and systemd's own review
of its sandbox stays where it is."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT

UNIT = ROOT / "packaging" / "slate.service"


def alternate_root(tmp_path: Path) -> Path:
    """A file system root holding the unit where the package puts it, systemd's own units
    (the targets it is ordered after) and an executable /usr/bin/slate: `verify` checks
    that ExecStart names an executable file, not what it does (tests/unit/test_package.py
    verifies the unit again in the built package, with the real one)."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy(UNIT, root / "usr/lib/systemd/system/slate.service")
    (root / "usr/bin").mkdir()
    (root / "usr/bin/slate").write_text("#!/bin/sh\nexit 0\n")
    (root / "usr/bin/slate").chmod(0o755)
    return root


def analyze(root: Path, *verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *verb, f"--root={root}", "--man=no",
         "/usr/lib/systemd/system/slate.service"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    proc = analyze(alternate_root(tmp_path), "verify")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_verify_would_see_a_mistake(tmp_path: Path) -> None:
    root = alternate_root(tmp_path)
    unit = root / "usr/lib/systemd/system/slate.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
    proc = analyze(root, "verify")
    assert "Unknown key 'ProtectSystm' in section [Service], ignoring." in proc.stderr


def test_the_service_line_by_line() -> None:
    lines = [line for line in UNIT.read_text().splitlines() if line and line[0] != "#"]
    assert "ExecStart=/usr/bin/slate serve --config /etc/slate/slate.conf" in lines
    assert "Restart=on-failure" in lines
    assert "StandardError=journal" in lines
    assert "ProtectSystem=strict" in lines and "ReadWritePaths=/var/lib/slate" in lines
    assert "PrivateTmp=yes" in lines and "NoNewPrivileges=yes" in lines
    assert "StateDirectoryMode=0700" in lines
    caps = "CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_NICE"
    assert f"CapabilityBoundingSet={caps}" in lines
    assert f"AmbientCapabilities={caps}" in lines
    text = UNIT.read_text()
    for cap in caps.split():  # each one says why it is there
        assert re.search(rf"^#\s+{cap}\s+\S", text, re.M), cap


def test_the_sandbox_review_stays_low(tmp_path: Path) -> None:
    proc = analyze(alternate_root(tmp_path), "security", "--offline=yes")
    found = re.search(r"Overall exposure level for slate\.service: (\d+\.\d)", proc.stdout)
    assert found, proc.stdout[-500:] + proc.stderr
    assert float(found.group(1)) <= 2.2  # 10 = no sandbox; it was 2.2 when written
