"""Linux in a restored root filesystem: host name, the 127.0.1.1 line of /etc/hosts,
machine-id and SSH host keys.  Every file is written next to itself and renamed (no
half-written /etc/hostname), never through a symlink (an absolute link in the restored
system would point into the boot environment), and read back before it counts."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from bootimage.client import sshkey

HOSTS_LINE = "127.0.1.1"


def is_root(mnt: Path) -> bool:
    return os.path.lexists(mnt / "etc" / "os-release")


def roots_in(mnt: Path) -> list[Path]:
    """The filesystem itself, or (btrfs) its top-level subvolumes such as ``@``."""
    if is_root(mnt):
        return [mnt]
    try:
        names = sorted(os.listdir(mnt))
    except OSError:
        return []
    return [mnt / n for n in names if n.startswith("@") and is_root(mnt / n)]


def hosts_text(old: str, hostname: str) -> str:
    """/etc/hosts with its 127.0.1.1 line naming ``hostname`` (added after the
    127.0.0.1 line, or at the top, when there is none)."""
    short = hostname.split(".")[0]
    names = f"{hostname} {short}" if short != hostname else hostname
    line = f"{HOSTS_LINE}\t{names}"
    lines = old.splitlines()
    out: list[str] = []
    replaced = False
    for text in lines:
        fields = text.split("#", 1)[0].split()
        if fields and fields[0] == HOSTS_LINE:
            if not replaced:
                out.append(line)
                replaced = True
            continue
        out.append(text)
    if not replaced:
        at = next((i + 1 for i, t in enumerate(out) if t.split()[:1] == ["127.0.0.1"]), 0)
        out.insert(at, line)
    return "\n".join(out) + "\n"


class Unsafe(Exception):
    """The path is a symlink, or leaves the restored filesystem."""


def _checked(root: Path, rel: str) -> Path:
    path = root / rel
    real_root, real_parent = os.path.realpath(root), os.path.realpath(path.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise Unsafe(f"/{os.path.dirname(rel)} leads out of the restored filesystem")
    if path.is_symlink():
        raise Unsafe(f"/{rel} is a symlink (to {os.readlink(path)})")
    return path


def write_file(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    """Write ``root/rel`` atomically, keeping an existing file's mode and owner."""
    path = _checked(root, rel)
    uid, gid = os.geteuid(), os.getegid()  # root in the boot environment
    if path.exists():
        st = path.stat()
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    tmp = path.with_name(f".{path.name}.slate")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode())
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if path.read_text() != text:
        raise OSError(f"/{rel} does not read back as written")


def apply(
    root: Path,
    hostname: str,
    machine_id: str,
    log: Callable[[str], None],
    *,
    keys: list[dict[str, str]] | None = None,
) -> list[str]:
    """Set the identity of the Linux system under ``root``; returns what could not be set.
    ``keys``: the machine's kept SSH host keys; None: a fresh Ed25519 key."""
    failed: list[str] = []

    def attempt(what: str, action: Callable[[], str]) -> None:
        try:
            log(f"  {action()}")
        except (OSError, Unsafe) as exc:
            log(f"  WARNING: {what} not set: {exc}")
            failed.append(what)

    attempt("/etc/hostname", lambda: _hostname(root, hostname))
    attempt("/etc/hosts", lambda: _hosts(root, hostname))
    if machine_id:
        attempt("/etc/machine-id", lambda: _machine_id(root, machine_id))
        dbus = root / "var/lib/dbus/machine-id"
        if dbus.is_file() and not dbus.is_symlink():
            attempt("/var/lib/dbus/machine-id", lambda: _dbus_id(root, machine_id))
    attempt("SSH host keys", lambda: _ssh_keys(root, hostname, keys))
    return failed


def _hostname(root: Path, hostname: str) -> str:
    write_file(root, "etc/hostname", hostname + "\n")
    return f"/etc/hostname = {hostname}"


def _hosts(root: Path, hostname: str) -> str:
    path = _checked(root, "etc/hosts")
    old = path.read_text() if path.exists() else "127.0.0.1\tlocalhost\n"
    write_file(root, "etc/hosts", hosts_text(old, hostname))
    return f"/etc/hosts: {HOSTS_LINE} {hostname}"


def _machine_id(root: Path, machine_id: str) -> str:
    write_file(root, "etc/machine-id", machine_id + "\n", mode=0o444)
    return f"/etc/machine-id = {machine_id} (kept for this machine by the appliance)"


def _dbus_id(root: Path, machine_id: str) -> str:
    write_file(root, "var/lib/dbus/machine-id", machine_id + "\n")
    return f"/var/lib/dbus/machine-id = {machine_id}"


def _ssh_keys(root: Path, hostname: str, keys: list[dict[str, str]] | None) -> str:
    """The machine's host keys in place of the image's (every restored machine would
    otherwise share the reference machine's): its kept ones when the appliance sent them
    over TLS, else a fresh Ed25519 key made for this restore."""
    ssh = _checked(root, "etc/ssh/sshd_config").parent
    old = sorted(ssh.glob("ssh_host_*")) if ssh.is_dir() else []
    if not (ssh / "sshd_config").exists() and not old:
        return "SSH: no OpenSSH server in this system; no host keys written"
    if keys is None:
        key, pub = sshkey.new_pair(f"root@{hostname}")
        keys, how = [{"kind": "ed25519", "private": key, "public": pub}], "a fresh"
    else:
        how = "this machine's kept"
    for path in old:
        path.unlink()
    written = []
    for k in keys:
        kind = k["kind"]
        if kind not in ("ed25519", "ecdsa", "rsa"):
            raise OSError(f"the appliance sent an SSH key of unknown type {kind!r}")
        write_file(root, f"etc/ssh/ssh_host_{kind}_key", k["private"], mode=0o600)
        write_file(root, f"etc/ssh/ssh_host_{kind}_key.pub", k["public"], mode=0o644)
        written.append(f"{kind} (…{k['public'].split()[1][-16:]})")
    kinds = {f"ssh_host_{k['kind']}_key" for k in keys}
    gone = ", ".join(p.name for p in old if p.name.removesuffix(".pub") not in kinds) or "none"
    return (
        f"/etc/ssh: {how} SSH host key(s) {', '.join(written)}; the image's other host keys"
        f" removed: {gone}"
    )
