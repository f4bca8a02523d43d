"""Per-machine identity that the restore client writes into a restored system (issue 13).

The inventory is the source: the host name is the host's, and the machine-id is made
once per machine (the first time it is asked for) and kept, so a machine keeps its
machine-id across restores.  Per image, identity can be turned off for images that
sysprep or cloud-init handle themselves.

SSH host keys: private keys are secrets.  The appliance makes them once per machine (with
ssh-keygen) and keeps them, and hands them only to that machine's restore job and only
over the pinned TLS client channel (``GET /identity/ssh-host-keys``, 403 over plain
HTTP).  A client on plain HTTP is told ``ssh_host_keys: fresh`` and writes new keys at
every restore instead.
"""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import audit
from appliance.errors import SlateError

KEY_KINDS = ("ed25519",)  # what the appliance keeps per machine (sshd needs only one)


@dataclass(frozen=True)
class Identity:
    hostname: str
    machine_id: str
    enabled: bool  # False: the image's setting says write nothing
    # Where the restored system's SSH host keys come from: "stable" (kept per machine,
    # fetched over TLS) or "fresh" (the client makes new ones: plain HTTP).
    ssh_host_keys: str = "fresh"

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "hostname": self.hostname,
            "machine_id": self.machine_id,
            "ssh_host_keys": self.ssh_host_keys,
        }


def machine_id(conn: sqlite3.Connection, mac: str) -> str:
    """The machine's kept machine-id, made now if it has none yet."""
    conn.execute(
        "INSERT OR IGNORE INTO host_identity(mac, machine_id) VALUES (?, ?)",
        (mac, uuid.uuid4().hex),
    )
    row = conn.execute("SELECT machine_id FROM host_identity WHERE mac=?", (mac,)).fetchone()
    return str(row[0])


def image_enabled(conn: sqlite3.Connection, image: str) -> bool:
    row = conn.execute("SELECT enabled FROM image_identity WHERE image=?", (image,)).fetchone()
    return row is None or bool(row[0])


def set_image_enabled(conn: sqlite3.Connection, image: str, enabled: bool, *, actor: str) -> None:
    conn.execute(
        "INSERT INTO image_identity(image, enabled) VALUES (?, ?)"
        " ON CONFLICT(image) DO UPDATE SET enabled=excluded.enabled",
        (image, int(enabled)),
    )
    audit.record(conn, actor, "image.identity", image, "on" if enabled else "off")


def for_restore(
    conn: sqlite3.Connection, mac: str, hostname: str, image: str, *, tls: bool = False
) -> Identity:
    """What a restore job's client writes into the restored system of ``mac``; ``tls``:
    the client asked over the TLS channel, so it may fetch the machine's kept SSH keys."""
    if not image_enabled(conn, image):
        return Identity(hostname, "", enabled=False)
    try:
        kept = machine_id(conn, mac)
    except sqlite3.IntegrityError:  # not (or no longer) a host: nothing is kept for it
        return Identity(hostname, "", enabled=False)
    return Identity(hostname, kept, enabled=True, ssh_host_keys="stable" if tls else "fresh")


def ssh_host_keys(conn: sqlite3.Connection, mac: str, hostname: str) -> list[dict[str, str]]:
    """The machine's kept SSH host keys (made now when it has none yet): secrets, for
    its own restore client over TLS only."""
    for kind in KEY_KINDS:
        if conn.execute(
            "SELECT 1 FROM host_ssh_keys WHERE mac=? AND kind=?", (mac, kind)
        ).fetchone():
            continue
        private, public = _keygen(kind, f"root@{hostname}")
        conn.execute(
            "INSERT OR IGNORE INTO host_ssh_keys(mac, kind, private, public) VALUES (?,?,?,?)",
            (mac, kind, private, public),
        )
    rows = conn.execute(
        "SELECT kind, private, public FROM host_ssh_keys WHERE mac=? ORDER BY kind", (mac,)
    ).fetchall()
    return [{"kind": r[0], "private": r[1], "public": r[2]} for r in rows]


def _keygen(kind: str, comment: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="slate-keygen-") as tmp:
        path = Path(tmp) / "key"
        try:
            proc = subprocess.run(
                ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SlateError(
                "cannot make SSH host keys: ssh-keygen is missing on the appliance",
                hint="install openssh-client (./run install does)",
            ) from exc
        if proc.returncode != 0:
            raise SlateError(f"ssh-keygen -t {kind} failed: {proc.stderr.strip()}")
        return path.read_text(), path.with_suffix(".pub").read_text()
