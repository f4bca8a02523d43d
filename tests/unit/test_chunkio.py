"""The chunk-stream reader/writer and the manifest model (shared with the restore client)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import zstandard

from appliance.errors import IntegrityError, UsageError
from appliance.formats import chunkio
from appliance.formats.manifest import UNUSED, ZERO, Chunk, Disk, Manifest

CS = 64 * 1024


def _source(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    rnd = random.Random(7)
    data = bytearray(size)
    for off in range(0, size, CS):
        kind = (off // CS) % 4
        if kind == 1:
            data[off : off + CS] = rnd.randbytes(CS)[: len(data[off : off + CS])]
        elif kind == 2:
            data[off : off + CS] = (b"slate text " * (CS // 11 + 1))[: len(data[off : off + CS])]
    path = tmp_path / "src.img"
    path.write_bytes(bytes(data))
    return path, bytes(data)


def _encode(path: Path, size: int, frames: dict[str, bytes]) -> list[chunkio.Encoded]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(
            chunkio.encode_chunks(
                chunkio.pread_fn(fd),
                size,
                CS,
                need=lambda d: d not in frames,
                sink=frames.__setitem__,
                workers=3,
            )
        )
    finally:
        os.close(fd)


def _disk(size: int, encoded: list[chunkio.Encoded]) -> Disk:
    return Disk(index=0, size=size, chunk_size=CS, chunks=tuple(e.chunk for e in encoded))


def test_round_trip_sparse_and_exact(tmp_path):
    size = 10 * CS + 1234  # short last chunk
    src, data = _source(tmp_path, size)
    frames: dict[str, bytes] = {}
    encoded = _encode(src, size, frames)
    assert [e.index for e in encoded] == list(range(11))
    assert encoded[0].chunk == ZERO and encoded[4].chunk == ZERO
    # The text chunks repeat: stored once.
    assert len(frames) == len({e.chunk.digest for e in encoded if e.chunk.digest})
    disk = _disk(size, encoded)
    out = tmp_path / "out.img"
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    os.ftruncate(fd, size)
    stats = chunkio.write_chunks(fd, disk, frames.__getitem__, fresh=True, workers=3)
    os.close(fd)
    assert out.read_bytes() == data
    assert stats.verified == size - disk.bytes_of("unused")
    # Zero chunks stayed holes.
    assert os.stat(out).st_blocks * 512 < size


def test_overwrites_stale_zero_areas_and_compare_skips(tmp_path):
    size = 8 * CS
    src, data = _source(tmp_path, size)
    frames: dict[str, bytes] = {}
    disk = _disk(size, _encode(src, size, frames))
    target = tmp_path / "dev.img"
    target.write_bytes(b"\xff" * size)  # like a used block device
    fd = os.open(target, os.O_RDWR)
    chunkio.write_chunks(fd, disk, frames.__getitem__, fresh=False)
    assert target.read_bytes() == data
    again = chunkio.write_chunks(fd, disk, frames.__getitem__, fresh=False, compare=True)
    os.close(fd)
    assert again.written == 0 and again.verified == size


def test_damaged_chunk_is_named_with_offset(tmp_path):
    size = 4 * CS
    src, _ = _source(tmp_path, size)
    frames: dict[str, bytes] = {}
    disk = _disk(size, _encode(src, size, frames))
    bad = disk.chunks[1].digest
    assert bad is not None
    raw = zstandard.ZstdDecompressor().decompress(frames[bad])
    frames[bad] = chunkio.compress_chunk(raw[:-1] + bytes([raw[-1] ^ 1]))
    fd = os.open(tmp_path / "o.img", os.O_RDWR | os.O_CREAT)
    with pytest.raises(IntegrityError) as info:
        chunkio.write_chunks(fd, disk, frames.__getitem__, fresh=True, what="image w@x")
    os.close(fd)
    assert bad in str(info.value) and f"offset {CS}" in str(info.value)
    assert "image w@x" in str(info.value)


def test_decode_rejects_garbage_and_wrong_length():
    data = b"abc" * 1000
    digest = chunkio.hash_chunk(data)
    frame = chunkio.compress_chunk(data)
    assert chunkio.decode_chunk(digest, frame, len(data)) == data
    with pytest.raises(IntegrityError):
        chunkio.decode_chunk(digest, b"not zstd", len(data))
    with pytest.raises(IntegrityError):
        chunkio.decode_chunk(digest, frame, len(data) - 1)


def test_extents_skip_holes_without_reading():
    ext = chunkio.Extents([(CS * 3, 10), (0, 5), (4, 10)])
    assert ext.ranges == [(0, 14), (CS * 3, 10)]
    assert ext.overlaps(0, CS) and not ext.overlaps(CS, CS) and ext.overlaps(CS * 3, CS)

    def read(offset: int, length: int) -> bytes:
        assert offset in (0, CS * 3), "holes must not be read"
        return b"\x01" * length

    out = list(chunkio.encode_chunks(read, 4 * CS, CS, extents=ext))
    assert [e.chunk.kind for e in out] == ["hash", "zero", "zero", "hash"]


def test_manifest_json_round_trip_and_runs():
    d = "ab" * 32
    chunks = (Chunk("hash", d), ZERO, ZERO, ZERO, UNUSED, UNUSED, Chunk("hash", d))
    disk = Disk(index=0, size=7 * CS - 5, chunk_size=CS, chunks=chunks, table="gpt")
    m = Manifest("win11", "20261125T162431Z", "2026-11-25T16:24:31Z", disks=(disk,))
    text = m.to_json()
    assert b'"zero*3"' in text and b'"unused*2"' in text
    assert Manifest.from_json(text) == m
    assert disk.chunk_range(6) == (6 * CS, CS - 5)
    renamed = Manifest.from_json(text, image="other", version="20261125T162432Z")
    assert renamed.ref == "other@20261125T162432Z"


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(disks=[]),
        lambda d: d["disks"][0].update(chunks=["zero"]),
        lambda d: d["disks"][0].update(chunks=["xyz", "zero"]),
        lambda d: d["disks"][0].update(chunk_size=1000),
        lambda d: d.update(format=99),
    ],
)
def test_manifest_validation(change):
    import json

    disk = Disk(index=0, size=2 * CS, chunk_size=CS, chunks=(ZERO, ZERO))
    data = Manifest("a", "20261125T162431Z", "", disks=(disk,)).to_dict()
    change(data)
    with pytest.raises(IntegrityError):
        Manifest.from_json(json.dumps(data))


def test_manifest_rejects_bad_names():
    disk = Disk(index=0, size=CS, chunk_size=CS, chunks=(ZERO,))
    for name in ("a/b", "..", "a..b", ""):
        with pytest.raises(UsageError):
            Manifest(name, "20261125T162431Z", "", disks=(disk,))
