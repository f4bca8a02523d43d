"""Job tokens: each job's secret, derived and never stored.

``token = HMAC-SHA256(server secret, "slate-job:<id>:<nonce>")`` where the secret is a
0600 file in the data dir and the nonce a random column.  The database keeps only
``sha256(token)`` for lookups, so a copy of ``slate.db`` (a backup, a support bundle)
reveals no token, yet the boot script of a machine that reboots mid-job can be rendered
again with the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from appliance.config import Layout
from appliance.secrets_file import random_secret, read_or_create


def load_secret(layout: Layout) -> bytes:
    """The server secret tokens derive from; created (0600) on first use."""
    return read_or_create(layout.job_secret, random_secret(32))


def new_nonce() -> str:
    """The random part of a new job's token (its ``token_nonce`` column)."""
    return secrets.token_hex(16)


def derive(secret: bytes, job_id: int, nonce: str) -> str:
    """The token of job ``job_id`` with ``nonce``."""
    msg = f"slate-job:{job_id}:{nonce}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
