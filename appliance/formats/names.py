"""Names of things in the store: the contract between the library, the HTTP server
and the restore client.  A store is plain files that any HTTP server can serve:

    chunks/<h0h1>/<sha256 hex of the UNCOMPRESSED chunk>.zst   zstd frame, never modified
    manifests/<image>/<version>.json                          committed last, atomically
"""

from __future__ import annotations

import re

HASH_NAME = "sha256"
HASH_HEX_LEN = 64
CHUNK_SUFFIX = ".zst"

_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^\d{8}T\d{6}(\.\d{1,6})?Z$")


def is_digest(text: str) -> bool:
    return bool(_HEX.match(text))


def is_image_name(text: str) -> bool:
    """Image names are path-safe: letters, digits, ``.``, ``_``, ``-``; no ``..``."""
    return bool(_NAME.match(text)) and ".." not in text


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def chunk_relpath(digest: str) -> str:
    if not is_digest(digest):
        raise ValueError(f"not a chunk name: {digest!r}")
    return f"chunks/{digest[:2]}/{digest}{CHUNK_SUFFIX}"


def manifest_relpath(image: str, version: str) -> str:
    if not is_image_name(image) or not is_version(version):
        raise ValueError(f"not an image version: {image!r}@{version!r}")
    return f"manifests/{image}/{version}.json"
