"""Manifest signatures: this appliance's Ed25519 key and the pinned keys of others.

A publishing appliance signs the exact bytes of each manifest it puts in a library;
a subscriber pins the publisher's public key when it adds the library (shown as a
fingerprint, ``SHA256:`` and the base64 of the key's SHA-256, as SSH shows host keys)
and refuses a manifest whose signature does not verify under it.  The bucket and every
copy between are untrusted transport (docs/district.md, Trust)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.config import Layout
from appliance.errors import IntegrityError, UsageError
from appliance.secrets_file import read_or_create

SIGNATURE_SIZE = 64
PUBLIC_SIZE = 32


def own_key(layout: Layout) -> Ed25519PrivateKey:
    """This appliance's signing key, made on first use (32 random bytes, 0600)."""
    seed = read_or_create(
        layout.district_key, lambda: Ed25519PrivateKey.generate().private_bytes_raw()
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def fingerprint(public: str | bytes) -> str:
    """``SHA256:…`` of a public key (hex text or raw bytes)."""
    raw = parse_public(public) if isinstance(public, str) else public
    digest = hashlib.sha256(raw).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public(text: str) -> bytes:
    """A public key as `slate library key` prints it (64 hex digits)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != PUBLIC_SIZE:
        raise UsageError(
            f"{text.strip()[:80]!r} is not an Ed25519 public key",
            hint="`slate library key` on the publishing appliance prints it (64 hex digits)",
        )
    return raw


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify(public: bytes, data: bytes, signature: bytes, what: str) -> None:
    """IntegrityError naming ``what`` unless ``signature`` is ``public``'s over ``data``."""
    if len(signature) != SIGNATURE_SIZE:
        raise IntegrityError(
            f"{what}: the manifest's signature is missing or malformed; refused",
            hint="only versions published by the pinned appliance are fetched",
        )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except InvalidSignature:
        raise IntegrityError(
            f"{what}: the manifest's signature does not verify under the pinned publisher"
            f" key {fingerprint(public)} (the manifest was altered, or another key signed"
            " it); refused",
            hint="nothing of it was stored; check who writes to the library's bucket",
        ) from None
