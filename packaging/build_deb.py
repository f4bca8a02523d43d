"""``./run package``: Slate as a Debian package, built with plain ``dpkg-deb``.

    /opt/slate/venv/                 Slate and its Python dependencies (pip), on Debian's python3
    /usr/bin/slate                   -> /opt/slate/venv/bin/slate
    /lib/systemd/system/slate.service
    /etc/slate/slate.conf            conffile: `slate config default` (every key commented out)
    /usr/share/doc/slate/            copyright, changelog, the docs
    /var/lib/slate                   made 0700 by postinst (and by the unit's StateDirectory)

It is built from what git has committed (``git archive HEAD``: a clean clone's tree, not
the working tree's edits), in a staging root where the venv is made at its final path's
name under the stage; the stage's path is then taken out of the venv's scripts and
configuration, and the build fails if it is still found anywhere.  No .pyc is shipped:
postinst compiles them (the service's /opt is read-only), prerm removes them.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path("/opt/slate/venv")
PYTHON = "/usr/bin/python3"  # Debian's: the venv's interpreter, so Depends on python3 3.11

# The Debian packages Slate runs (./run's APT_PACKAGES without the test-only ones):
DEPENDS = [
    "python3 (>= 3.11)",
    "python3 (<< 3.12)",  # the venv's compiled wheels (cryptography, zstandard) are cp311
    "ipxe",  # undionly.kpxe, snponly.efi, ipxe.efi served by TFTP
    "shim-signed",  # Secure Boot: shimx64.efi -> grubx64.efi
    "grub-efi-amd64-signed",
    "debootstrap",  # slate bootimage build
    "busybox-static",
    "zstd",
    "partclone",  # image import of partclone, FOG and Clonezilla images
    "lz4",  # image import of lz4-compressed partclone images (FOG, Clonezilla)
    "qemu-utils",  # image import of VM disks (qemu-img)
    "gdisk",  # sgdisk: image fit
    "fdisk",  # sfdisk
    "e2fsprogs",  # resize2fs, e2fsck, dumpe2fs
    "ntfs-3g",  # ntfsresize, ntfsfix, ...
    "dosfstools",
    "mtools",
    "openssl",  # the console's and the client channel's certificates
    "openssh-client",  # ssh-keygen: per-machine SSH host keys
    "iproute2",  # ip -j addr: the served interface's address
    "libc6 (>= 2.34)",  # the wheels' shared objects (cryptography's are manylinux_2_34)
]

CONTROL = """\
Package: slate
Version: {version}
Architecture: amd64
Maintainer: Slate developers <slate@example.org>
Section: admin
Priority: optional
Installed-Size: {size}
Depends: {depends}
Homepage: https://example.org/slate
Description: network-boot bare-metal restore appliance
 Slate restores disk images onto classroom machines over the network: PXE and
 UEFI HTTP boot (its own DHCP, TFTP, DNS and HTTP services), an image library
 with deduplicated chunks, room multicast, a web console and a district library
 in S3.  The service (slate.service) runs `slate serve` with the settings of
 /etc/slate/slate.conf; its data is in /var/lib/slate.
"""

POSTINST = """\
#!/bin/sh
# slate postinst: the data directory (0700, root's: the service runs as root with few
# capabilities, see slate.service), the .pyc of the venv, and a restart of the service
# on upgrade when it was enabled.  A fresh install does not start it: set INTERFACE in
# /etc/slate/slate.conf, then `systemctl enable --now slate`.
set -e
if [ "$1" = configure ]; then
    install -d -m 0700 /var/lib/slate
    /opt/slate/venv/bin/python -m compileall -q /opt/slate/venv/lib >/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        if [ -n "$2" ] && systemctl is-enabled --quiet slate.service; then
            deb-systemd-invoke restart slate.service || echo "slate: the service did" \\
                "not start again; see journalctl -u slate" >&2
        fi
    fi
fi
exit 0
"""

PRERM = """\
#!/bin/sh
# slate prerm: stop the service on removal, and before an upgrade unpacks the new venv
# under it (a running Python imports modules lazily: old and new would mix); postinst
# starts it again.  Drop the .pyc postinst made.
set -e
if { [ "$1" = remove ] || [ "$1" = upgrade ]; } && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop slate.service || true
fi
find /opt/slate/venv -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
exit 0
"""

POSTRM = """\
#!/bin/sh
# slate postrm: the data directory (the database and the image library) is never
# removed, not even on purge: remove /var/lib/slate by hand when it is really unwanted.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = purge ] && [ -d /var/lib/slate ]; then
    echo "slate: /var/lib/slate (the database and the image library) is kept" >&2
fi
exit 0
"""

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: slate
Comment: /opt/slate/venv holds Slate's Python dependencies as pip installed them;
 each one's license is in its *.dist-info directory there.

Files: *
Copyright: 2026 Slate developers
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of
 this software and associated documentation files (the "Software"), to deal in
 the Software without restriction, including without limitation the rights to
 use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
 the Software, and to permit persons to whom the Software is furnished to do so,
 subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all
 copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
 FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
 COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
 IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
 CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"build_deb: {' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def source_tree(work: Path, worktree: bool = False) -> Path:
    """The committed tree (a clean clone's), or this directory as it is (``worktree``, or
    when it is not git's)."""
    src = work / "src"
    src.mkdir()
    if (ROOT / ".git").exists() and not worktree:
        run(["git", "-C", str(ROOT), "archive", "--format=tar", f"--output={work / 'src.tar'}",
             "HEAD"])  # fmt: skip
        run(["tar", "-x", "-C", str(src), "-f", str(work / "src.tar")])
    else:
        shutil.copytree(ROOT, src, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "dist", "build", "artifacts", "__pycache__", "*.egg-info",
            ".*_cache"))  # fmt: skip
    return src


def make_venv(stage: Path, src: Path, wheels: Path) -> Path:
    """The venv, Slate installed in it by this checkout's pip (so no pip and no
    setuptools in the package) from ``wheels``, a wheelhouse: offline when it has every
    dependency (and setuptools, to build Slate's own wheel), else filled from PyPI first.
    The versions in it are those of the first build: remove it to take newer ones."""
    venv = stage / VENV.relative_to("/")
    run([PYTHON, "-m", "venv", "--without-pip", str(venv)])
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    install = [*pip, "--python", str(venv / "bin/python"), "install", "--no-compile",
               "--no-index", "--find-links", str(wheels), str(src)]  # fmt: skip
    if subprocess.run(install, capture_output=True).returncode != 0:
        wheels.mkdir(parents=True, exist_ok=True)
        run([*pip, "download", "--dest", str(wheels), "setuptools>=68"])
        run([*pip, "wheel", "--wheel-dir", str(wheels), str(src)])
        run(install)
    relocate(venv)
    strip_objects(venv)
    return venv


def relocate(venv: Path) -> None:
    """Take the stage's path out of the venv: its scripts' #! lines, activate, pyvenv.cfg;
    pip's note of where it installed Slate from goes."""
    staged, final = str(venv), str(VENV)
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if staged.encode() in data:
            path.write_bytes(data.replace(staged.encode(), final.encode()))
    for note in venv.glob("lib/python3*/site-packages/*.dist-info/direct_url.json"):
        note.unlink()
    for cache in list(venv.rglob("__pycache__")):
        shutil.rmtree(cache)
    leftover = subprocess.run(["grep", "-rlF", staged, str(venv)], capture_output=True, text=True)
    if leftover.stdout:
        sys.exit(f"build_deb: the stage's path is still in: {leftover.stdout[:1000]}")


def normalize_modes(stage: Path, venv: Path) -> None:
    """0755 directories; 0644 files but the venv's scripts (0755): whatever the umask and
    the wheels said (a module or a shared object is not a program)."""
    scripts = venv / "bin"
    for path in [stage, *stage.rglob("*")]:
        if path.is_symlink() or path.parent.name == "DEBIAN":
            continue
        script = path.parent == scripts and path.read_bytes()[:2] == b"#!"
        path.chmod(0o755 if path.is_dir() or script else 0o644)


def strip_objects(venv: Path) -> None:
    """The wheels' shared objects without their symbols, as dh_strip leaves them."""
    objects = [str(p) for p in venv.rglob("*.so")]
    if objects:
        run(["strip", "--strip-unneeded", "--remove-section=.comment",
             "--remove-section=.note", *objects])  # fmt: skip


def build(out: Path, version: str, wheels: Path, *, worktree: bool = False) -> Path:
    with tempfile.TemporaryDirectory(prefix="slate-deb.") as tmp:
        work = Path(tmp)
        src = source_tree(work, worktree)
        stage = work / "root"
        venv = make_venv(stage, src, wheels)
        (stage / "usr/bin").mkdir(parents=True)
        os.symlink(VENV / "bin" / "slate", stage / "usr/bin/slate")
        units = stage / "lib/systemd/system"
        units.mkdir(parents=True)
        shutil.copy(src / "packaging/slate.service", units / "slate.service")
        (stage / "etc/slate").mkdir(parents=True)
        conf = run([str(venv / "bin/python"), "-m", "appliance.cli", "config", "default"]).stdout
        (stage / "etc/slate/slate.conf").write_text(conf)
        doc = stage / "usr/share/doc/slate"
        doc.mkdir(parents=True)
        (doc / "copyright").write_text(COPYRIGHT)
        changelog = (f"slate ({version}) unstable; urgency=medium\n\n"
                     "  * Built from the Slate checkout by ./run package.\n\n"
                     " -- Slate developers <slate@example.org>  "
                     f"{run(['date', '-R']).stdout.strip()}\n")  # fmt: skip
        with gzip.GzipFile(doc / "changelog.gz", "wb", mtime=0) as fh:
            fh.write(changelog.encode())
        for md in sorted((src / "docs").glob("*.md")):
            shutil.copy(md, doc / md.name)
        control = stage / "DEBIAN"
        control.mkdir()
        size = sum(p.lstat().st_size for p in stage.rglob("*") if not p.is_dir()) // 1024
        (control / "control").write_text(
            CONTROL.format(version=version, size=size, depends=", ".join(DEPENDS))
        )
        (control / "conffiles").write_text("/etc/slate/slate.conf\n")
        overrides = stage / "usr/share/lintian/overrides"
        overrides.mkdir(parents=True)
        shutil.copy(src / "packaging/lintian-overrides", overrides / "slate")
        for name, text in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
            (control / name).write_text(text)
            (control / name).chmod(0o755)
        normalize_modes(stage, venv)
        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"slate_{version}_amd64.deb"
        run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", str(stage), str(deb)])
        return deb


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from appliance import __version__

    parser = argparse.ArgumentParser(description="build dist/slate_VERSION_amd64.deb")
    parser.add_argument("--out", default=str(ROOT / "dist"), help="where the .deb goes")
    parser.add_argument("--version", default=__version__, help="the package's version")
    parser.add_argument(
        "--wheels",
        default=str(ROOT / "build" / "wheels"),
        help="the wheelhouse of the dependencies (filled at the first build)",
    )
    parser.add_argument(
        "--worktree", action="store_true", help="package the working tree's files, not HEAD's"
    )
    args = parser.parse_args()
    print(build(Path(args.out), args.version, Path(args.wheels), worktree=args.worktree))
    return 0


if __name__ == "__main__":
    sys.exit(main())
