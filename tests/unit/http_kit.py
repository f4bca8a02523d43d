"""Helpers for the HTTP / jobs tests: a data dir with a small image written as real
store files (manifest + zstd chunks), a host and a job."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.manifest import ZERO, Chunk, Disk, Manifest
from appliance.formats.names import chunk_relpath, manifest_relpath

CHUNK = 64 * 1024
V1 = "20261125T100000Z"
V2 = "20261125T110000Z"


@dataclass
class Image:
    name: str
    version: str
    manifest: Manifest
    chunks: dict[str, bytes]  # digest → uncompressed data

    @property
    def digests(self) -> list[str]:
        return list(self.chunks)


def write_image(layout: Layout, name: str, version: str, n: int = 3, seed: int = 0) -> Image:
    """An image version of ``n`` random data chunks and one zero chunk, as store files."""
    chunks: dict[str, bytes] = {}
    entries: list[Chunk] = []
    for i in range(n):
        data = os.urandom(CHUNK) if seed == 0 else bytes([seed + i]) * CHUNK
        digest = hash_chunk(data)
        chunks[digest] = data
        entries.append(Chunk("hash", digest))
        path = layout.store / chunk_relpath(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compress_chunk(data))
    entries.append(ZERO)
    disk = Disk(index=0, size=CHUNK * len(entries), chunk_size=CHUNK, chunks=tuple(entries))
    manifest = Manifest(image=name, version=version, created="2026-11-25T10:00:00Z", disks=(disk,))
    path = layout.store / manifest_relpath(name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(manifest.to_json())
    return Image(name, version, manifest, chunks)


def chunk_url(digest: str) -> str:
    return "/" + "store/" + chunk_relpath(digest)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def home_layout(home: Path) -> Layout:
    return Layout(home)
