"""Per-machine identity that the restore client writes into a restored system (issue 13).

The inventory is the source: the host name is the host's, and the machine-id is made
once per machine (the first time it is asked for) and kept, so a machine keeps its
machine-id across restores.  Per image, identity can be turned off for images that
sysprep or cloud-init handle themselves.

SSH host keys: private keys are secrets, and the client channel is still clear HTTP on
the PXE network, so the appliance hands out none (:data:`SSH_HOST_KEYS`) and the client
writes fresh keys at every restore.  When the client channel runs over pinned TLS, the
appliance keeps keys per machine here and serves them only over TLS.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from appliance import audit

# Where the restored system's SSH host keys come from: "fresh" (the client makes new
# ones at each restore).  "stable" needs the TLS client channel (issue 12).
SSH_HOST_KEYS = "fresh"


@dataclass(frozen=True)
class Identity:
    hostname: str
    machine_id: str
    enabled: bool  # False: the image's setting says write nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "hostname": self.hostname,
            "machine_id": self.machine_id,
            "ssh_host_keys": SSH_HOST_KEYS,
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


def for_restore(conn: sqlite3.Connection, mac: str, hostname: str, image: str) -> Identity:
    """What a restore job's client writes into the restored system of ``mac``."""
    if not image_enabled(conn, image):
        return Identity(hostname, "", enabled=False)
    try:
        return Identity(hostname, machine_id(conn, mac), enabled=True)
    except sqlite3.IntegrityError:  # not (or no longer) a host: nothing is kept for it
        return Identity(hostname, "", enabled=False)
