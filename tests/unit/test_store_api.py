"""The Store API other parts code against (HTTP capture uploads, console, jobs)."""

from __future__ import annotations

import pytest

from appliance.config import Layout
from appliance.errors import Conflict, IntegrityError, NotFound, UsageError
from appliance.formats import chunkio
from appliance.formats.manifest import ZERO, Chunk, Disk, Manifest
from appliance.store import Store, parse_ref, version_key
from appliance.store.index import rows

CS = 64 * 1024


def _manifest(name: str, version: str, digest: str) -> Manifest:
    disk = Disk(index=0, size=2 * CS, chunk_size=CS, chunks=(Chunk("hash", digest), ZERO))
    return Manifest(name, version, "2026-11-25T00:00:00Z", disks=(disk,))


def test_upload_commit_resolve(home):
    store = Store(Layout(home))
    data = b"chunk data " * 5000
    digest = chunkio.hash_chunk(data)
    m = _manifest("pc", "20261125T000000Z", digest)
    with pytest.raises(IntegrityError, match="not stored"):
        store.commit(m)  # refuses until every chunk is there
    with store.session() as s:
        assert s.missing([digest, digest]) == [digest]
        for bad in (b"", b"garbage", chunkio.compress_chunk(data + b"x")):
            with pytest.raises(IntegrityError):
                s.put_chunk_frame(digest, bad)
        assert s.put_chunk_frame(digest, chunkio.compress_chunk(data))
        assert not s.put_chunk_frame(digest, chunkio.compress_chunk(data))
        s.commit(m)
    with pytest.raises(Conflict):
        store.commit(m)  # a version is never replaced
    later = _manifest("pc", "20261125T000000.5Z", digest)
    store.commit(later)
    assert store.resolve("pc").version == later.version  # latest by time, not by string
    assert store.resolve("pc", m.version) == m
    assert store.digests("pc", m.version) == frozenset({digest})
    assert store.missing([digest]) == [] and store.has_chunk(digest)
    with pytest.raises(NotFound):
        store.resolve("pc", "20200101T000000Z")
    with pytest.raises(NotFound):
        store.resolve("other")


def test_index_follows_the_files(home):
    store = Store(Layout(home))
    data = b"x" * CS
    digest = chunkio.hash_chunk(data)
    store.write_chunk(digest, chunkio.compress_chunk(data))
    for v in ("20261125T000001Z", "20261125T000002Z"):
        store.commit(_manifest("pc", v, digest))
    store.manifest_path("pc", "20261125T000001Z").unlink()  # behind the index's back
    assert [r["version"] for r in rows(store)] == ["20261125T000002Z"]
    store.remove("pc", "20261125T000002Z")
    assert rows(store) == [] and store.images() == []


def test_refs_and_version_order():
    assert parse_ref("pc") == ("pc", None)
    assert parse_ref("pc@20261125T000000Z") == ("pc", "20261125T000000Z")
    for bad in ("a/b", "pc@yesterday", "../x@20261125T000000Z"):
        with pytest.raises(UsageError):
            parse_ref(bad)
    ids = ["20261125T000001Z", "20261125T000000.5Z", "20261125T000000Z"]
    assert sorted(ids, key=version_key) == ids[::-1]


def test_versions_never_name_paths_outside_the_store(home):
    store = Store(Layout(home))
    for bad in ("../../etc/passwd", "20261125T000000Z/../x", ""):
        with pytest.raises(UsageError):
            store.load("pc", bad)
        with pytest.raises(UsageError):
            store.remove("pc", bad)
