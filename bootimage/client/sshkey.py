"""SSH host keys made in the boot environment, which has no ssh-keygen: an Ed25519 key
pair (RFC 8032) in OpenSSH's own file formats, stdlib only.

A restored system gets a fresh Ed25519 host key from here when the appliance cannot hand
out the machine's kept keys (they travel only over the pinned TLS client channel; see
appliance/machines/identity.py); ``ssh-keygen -y -f KEY`` reproduces the public key (the test)."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(p: _Point, q: _Point) -> _Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _times(n: int, p: _Point) -> _Point:
    out: _Point = (0, 1, 1, 0)
    while n:
        if n & 1:
            out = _add(out, p)
        p = _add(p, p)
        n >>= 1
    return out


def public_key(seed: bytes) -> bytes:
    """The 32-byte Ed25519 public key of a 32-byte private seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    x, y, z, _t = _times(a, (_BX, _BY, 1, _BX * _BY % _P))
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def openssh_pair(seed: bytes, comment: str) -> tuple[str, str]:
    """(private key file, public key line) of an Ed25519 key, as ssh-keygen writes them
    (unencrypted)."""
    pub = public_key(seed)
    blob = _string(b"ssh-ed25519") + _string(pub)
    check = os.urandom(4)
    private = (
        check
        + check
        + _string(b"ssh-ed25519")
        + _string(pub)
        + _string(seed + pub)
        + _string(comment.encode())
    )
    private += bytes(range(1, 1 + (-len(private)) % 8))  # pad to the cipher block (8)
    body = (
        b"openssh-key-v1\0"
        + _string(b"none")
        + _string(b"none")
        + _string(b"")
        + struct.pack(">I", 1)
        + _string(blob)
        + _string(private)
    )
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines)
    key += "\n-----END OPENSSH PRIVATE KEY-----\n"
    return key, f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}\n"


def new_pair(comment: str) -> tuple[str, str]:
    return openssh_pair(os.urandom(32), comment)
