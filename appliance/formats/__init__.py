"""The image format (v1): manifest model, chunk names, hashing, chunk-stream reader and
writer.  Shared by the appliance and the restore client in the boot environment, so it
imports only the standard library and ``zstandard``.
"""

from appliance.imagefmt.names import (
    CHUNK_SUFFIX,
    HASH_NAME,
    chunk_relpath,
    is_digest,
    is_image_name,
    is_version,
    manifest_relpath,
)

__all__ = [
    "CHUNK_SUFFIX",
    "HASH_NAME",
    "chunk_relpath",
    "is_digest",
    "is_image_name",
    "is_version",
    "manifest_relpath",
]
