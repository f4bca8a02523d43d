"""Loop devices over a byte range of a disk or file: how partclone, resize2fs and
ntfsresize reach one partition without depending on the kernel's partition nodes (a
loop over a plain file has none, and some kernels parse no partition tables)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from appliance.errors import SlateError


@contextmanager
def attached(path: str, offset: int, size: int, *, read_only: bool) -> Iterator[str]:
    if not os.path.exists("/dev/loop-control"):
        load_module("loop")
    cmd = ["losetup", "--find", "--show", "--offset", str(offset), "--sizelimit", str(size)]
    if read_only:
        cmd.append("--read-only")
    proc = subprocess.run([*cmd, path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SlateError(
            f"cannot attach a loop device to {path} at offset {offset}: {proc.stderr.strip()}",
            hint="the kernel needs the loop module (modprobe loop)",
        )
    dev = proc.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], capture_output=True, check=False)


def load_module(name: str) -> None:
    """``modprobe name``, best effort.  The boot environment loads only what udev asks
    for, and nothing asks for ``loop`` (no /dev/loop-control: losetup finds no free
    device) or ``efivarfs``.  Harmless where the module is built in or loaded."""
    with suppress(FileNotFoundError):
        subprocess.run(["modprobe", name], capture_output=True, check=False)


def run(cmd: list[str], what: str, *, ok: tuple[int, ...] = (0,), stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SlateError(f"cannot {what}: {cmd[0]} is missing from the boot environment") from exc
    if proc.returncode not in ok:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        raise SlateError(
            f"cannot {what}: {' '.join(cmd)} exited {proc.returncode}: {' | '.join(tail)}"
        )
    return proc.stdout
