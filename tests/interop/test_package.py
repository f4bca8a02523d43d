"""`./run package` (issue 27): the Debian package builds from the committed tree (a clean
clone's) with plain dpkg-deb, and holds what it says: the venv under /opt/slate that runs
Slate on Debian's python3, /usr/bin/slate, the unit (`systemd-analyze verify` clean with
the package's own /usr/bin/slate), the commented configuration as a conffile, the
maintainer scripts, the Depends.  Its dependencies' wheels are kept in the test cache
($SLATE_TEST_CACHE/wheels), so only the first build downloads them (~60 s; ~20 s after).
lintian (about a minute on the package's 4,000 files) runs in `./run package` itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from appliance import __version__
from appliance.settings import default_config
from tests.conftest import ROOT

CACHE = Path(os.environ.get("SLATE_TEST_CACHE") or "/var/cache/slate-tests")


def test_the_package_builds_and_holds_slate(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "packaging/build_deb.py"), "--out", str(tmp_path),
         "--wheels", str(CACHE / "wheels")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deb = tmp_path / f"slate_{__version__}_amd64.deb"
    assert proc.stdout == f"{deb}\n"

    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    field = dict(re.findall(r"^ ([A-Z][\w-]+): (.*)$", info, re.M))
    assert (field["Package"], field["Version"], field["Architecture"]) == (
        "slate", __version__, "amd64")  # fmt: skip
    depends = field["Depends"].split(", ")
    for needed in (
        "python3 (>= 3.11)",
        "python3 (<< 3.12)",
        "ipxe",
        "shim-signed",
        "grub-efi-amd64-signed",
        "debootstrap",
        "partclone",
        "zstd",
        "openssl",
    ):
        assert needed in depends  # fmt: skip
    control = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True,
                             check=True).stdout  # fmt: skip
    listed = subprocess.run(["tar", "-t"], input=control, capture_output=True, check=True)
    assert sorted(listed.stdout.decode().split()) == [
        "./", "./conffiles", "./control", "./postinst", "./postrm", "./prerm"]  # fmt: skip
    scripts = tmp_path / "control"
    subprocess.run(["dpkg-deb", "--control", str(deb), str(scripts)], check=True)
    for name in ("postinst", "prerm", "postrm"):
        assert (scripts / name).stat().st_mode & 0o777 == 0o755
        assert subprocess.run(["sh", "-n", str(scripts / name)]).returncode == 0, name
    assert "install -d -m 0700 /var/lib/slate" in (scripts / "postinst").read_text()
    assert (scripts / "conffiles").read_text() == "/etc/slate/slate.conf\n"

    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True,
                              text=True, check=True).stdout.splitlines()  # fmt: skip
    paths = {line.split()[5]: line for line in contents}
    assert paths["./usr/bin/slate"].endswith("./usr/bin/slate -> /opt/slate/venv/bin/slate")
    for path in (
        "./lib/systemd/system/slate.service",
        "./etc/slate/slate.conf",
        "./opt/slate/venv/bin/slate",
        "./usr/share/doc/slate/copyright",
        "./usr/share/doc/slate/operations.md",
        "./usr/share/lintian/overrides/slate",
    ):
        assert path in paths  # fmt: skip
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
    modes = {line.split()[0] for line in contents}
    assert modes == {"drwxr-xr-x", "-rw-r--r--", "-rwxr-xr-x", "lrwxrwxrwx"}
    assert {line.split()[1] for line in contents} == {"root/root"}

    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    assert (root / "etc/slate/slate.conf").read_text() == default_config(__version__)
    unit = root / "lib/systemd/system/slate.service"
    assert unit.read_bytes() == (ROOT / "packaging/slate.service").read_bytes()
    assert (root / "DEBIAN").exists() is False
    venv = root / "opt/slate/venv"
    assert os.readlink(venv / "bin/python3") == "/usr/bin/python3"
    assert (venv / "bin/slate").read_text().startswith("#!/opt/slate/venv/bin/python\n")
    # The venv runs Slate on this Debian's python3, with every dependency importable.
    ran = subprocess.run(
        [str(venv / "bin/python"), "-c", "import boto3, cheroot, cryptography, dnslib, flask,"
         " tftpy, zstandard, webui, bootimage; from appliance.cli import main; main()",
         "--version"],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, f"slate {__version__}\n", "")

    # The unit, verified in the package's own tree: its /usr/bin/slate is the real link.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True,
                    dirs_exist_ok=True)  # fmt: skip
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no",
         "/lib/systemd/system/slate.service"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")
