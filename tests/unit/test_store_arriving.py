"""gc keeps the chunks of a version on its way from a district library (its signed
manifest kept under district/, the version not committed yet), so a fetch cut short
resumes without reading them again; once nothing names them they go."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from appliance.config import Layout
from appliance.formats.names import manifest_relpath
from appliance.store import Store
from appliance.store.collect import collect
from appliance.store.importer import import_image

MIB = 1 << 20


def test_gc_keeps_the_chunks_of_a_version_arriving_from_a_library(tmp_path: Path) -> None:
    source = tmp_path / "disk.img"
    source.write_bytes(os.urandom(3 * MIB))
    hq = Store(Layout(tmp_path / "hq"))
    m = import_image(hq, [source], "lab", chunk_size=MIB).manifest
    school = Store(Layout(tmp_path / "school"))
    # Two of its chunks arrived before the fetch was cut; the version is not committed.
    arrived = sorted(m.digests())[:2]
    for d in arrived:
        school.chunk_path(d).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(hq.chunk_path(d), school.chunk_path(d))
    kept = school.layout.district / "district" / manifest_relpath("lab", m.version)
    kept.parent.mkdir(parents=True)
    kept.write_bytes(hq.manifest_path("lab", m.version).read_bytes())
    assert collect(school).removed == 0
    assert all(school.has_chunk(d) for d in arrived)
    # A damaged kept copy keeps nothing (and gc does not fail on it).
    kept.write_bytes(b"{not json")
    assert collect(school).removed == 2
    assert not any(school.has_chunk(d) for d in arrived)
