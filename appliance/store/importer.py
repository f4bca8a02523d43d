"""``slate image import``: disks (files, block devices, VM disks, partclone and FOG
images; see :mod:`appliance.store.sources`) → a new version."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import Conflict, UsageError
from appliance.formats import chunkio, partitions
from appliance.formats.manifest import DEFAULT_CHUNK_SIZE, Chunk, Disk, Manifest
from appliance.store.library import Session, Store, check_name
from appliance.store.sources import Source, open_sources
from appliance.timestamps import utc_now

Progress = Callable[[int], None]


@dataclass
class ImportResult:
    manifest: Manifest
    new_chunks: int = 0
    new_bytes: int = 0  # compressed bytes added to the store


def import_image(
    store: Store,
    paths: Sequence[Path],
    name: str,
    note: str = "",
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    level: int = chunkio.DEFAULT_LEVEL,
    workers: int | None = None,
    progress: Callable[[int], Progress] | None = None,
    fmt: str = "any",
    found: Callable[[Path, str], None] | None = None,
) -> ImportResult:
    """Import one disk per path as a new version of ``name``.  Every source is
    opened and checked before anything is written; on any failure the chunks this
    import added are removed again and no version becomes visible.

    ``progress(total_bytes)`` returns a callback given bytes done per chunk.  ``fmt``:
    see :func:`open_sources` ("auto" refuses what is not a disk image; the CLI's
    default); ``found(path, what)`` is told what each source was recognized as."""
    check_name(name)
    if not paths:
        raise UsageError("no source given", hint="give a disk image file or block device")
    with store.session() as session, contextlib.ExitStack() as stack:
        sources: list[Source] = []
        for p in paths:
            opened = stack.enter_context(open_sources(p, store.root / "tmp", session.id, fmt))
            for src in opened:
                if found:
                    found(p, src.what)
            sources.extend(opened)
        advance = progress(sum(s.size for s in sources)) if progress else None
        result = ImportResult(manifest=None)  # type: ignore[arg-type]
        disks = tuple(
            _import_disk(session, n, src, chunk_size, level, workers, advance, result)
            for n, src in enumerate(sources)
        )
        created = utc_now()
        source = ", ".join(str(p) for p in paths)
        for _attempt in range(3):  # two imports of one name in the same second
            manifest = Manifest(name, store.new_version_id(name), created, note, source,
                                disks=disks)  # fmt: skip
            try:
                result.manifest = session.commit(manifest)
                return result
            except Conflict:
                continue
        raise Conflict(f"could not find a free version id for {name}; try again")


def import_disk(
    session: Session, index: int, src: Source, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[Disk, int, int]:
    """One disk into ``session`` (its chunks pinned, the new ones stored), for a caller
    that builds its own manifest (``slate image fit``): (disk, new chunks, new bytes)."""
    result = ImportResult(manifest=None)  # type: ignore[arg-type]
    disk = _import_disk(session, index, src, chunk_size, chunkio.DEFAULT_LEVEL, None, None, result)
    return disk, result.new_chunks, result.new_bytes


def _import_disk(
    session: Session,
    index: int,
    src: Source,
    chunk_size: int,
    level: int,
    workers: int | None,
    advance: Progress | None,
    result: ImportResult,
) -> Disk:
    table = partitions.detect(src.read, src.size, src.logical_sector_size)
    chunks: list[Chunk] = []
    for enc in chunkio.encode_chunks(
        src.read,
        src.size,
        chunk_size,
        extents=src.extents,
        need=session.need,
        sink=session.write_chunk,
        level=level,
        workers=workers,
        hole=src.hole,
    ):
        chunks.append(enc.chunk)
        if enc.stored:
            result.new_chunks += 1
            result.new_bytes += enc.stored
        if advance:
            advance(enc.length)
    return Disk(
        index=index,
        size=src.size,
        logical_sector_size=src.logical_sector_size,
        physical_sector_size=src.physical_sector_size,
        table=table.kind,
        partitions=table.partitions,
        model=src.model,
        serial=src.serial,
        chunk_size=chunk_size,
        chunks=tuple(chunks),
    )
