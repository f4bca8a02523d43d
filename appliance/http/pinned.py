"""The boot environment's initrd with this appliance's client certificate pinned in it.

The boot environment is built once and shared (by every appliance of a build cache, by
``slate bootimage build`` before any certificate exists), so the pin cannot be baked in
when it is built.  Instead the appliance serves one small uncompressed cpio archive
holding ``etc/slate/appliance.pem`` followed by the built initrd: the kernel unpacks
concatenated archives in order, each compressed or not (the way early microcode is
prepended), so the client finds the pin at :data:`PIN_PATH` (docs/security.md).  First,
not last: a machine short of memory stops unpacking where its memory ends ("Initramfs
unpacking failed: write error"), and what comes last is lost first (a 448 MiB UEFI lab
machine lost an appended pin that way).

The pinned file is made once per (initrd, certificate) in the data directory and
re-made when either changes; it is an ordinary file, so HTTP (sendfile, Range) and TFTP
serve it as they serve the built one.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import threading
from pathlib import Path

from appliance.formats.cpio import CpioWriter  # stdlib only: no builder dependencies

PIN_PATH = "etc/slate/appliance.pem"  # bootimage/client/cmdline.py PIN, without the "/"
ALIGN = 512  # the pin archive is padded to this: the kernel skips the zeros after it
_lock = threading.Lock()


def pin_archive(cert_pem: bytes) -> bytes:
    """An uncompressed newc cpio archive with ``etc/slate/appliance.pem`` (0644) in it,
    written by the boot environment's own reproducible writer, padded to ``ALIGN``."""
    out = io.BytesIO()
    writer = CpioWriter(out, mtime=0)
    writer.entry("etc", stat.S_IFDIR | 0o755)
    writer.entry("etc/slate", stat.S_IFDIR | 0o755)
    writer.entry(PIN_PATH, stat.S_IFREG | 0o644, cert_pem)
    writer.finish()
    archive = out.getvalue()
    return archive + b"\0" * (-len(archive) % ALIGN)


def pinned_initrd(src: Path, cert: Path, workdir: Path) -> Path | None:
    """``workdir/initrd.img`` = :func:`pin_archive` of ``cert`` (padded) + ``src``;
    made again when ``src`` or ``cert`` changed.  None if ``src`` does not exist."""
    try:
        st = src.stat()
    except FileNotFoundError:
        return None
    pem = cert.read_bytes()
    stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{hashlib.sha256(pem).hexdigest()}\n"
    dest, mark = workdir / src.name, workdir / f".{src.name}.made-from"
    with _lock:
        if dest.is_file() and mark.is_file() and mark.read_text() == stamp:
            return dest
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = workdir / f".{src.name}.{os.getpid()}.tmp"
        with src.open("rb") as fin, tmp.open("wb") as fout:
            fout.write(pin_archive(pem))
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dest)
        mark.write_text(stamp)
    return dest
