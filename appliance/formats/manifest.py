"""The manifest of one image version: which disks, and for each chunk index of each
disk whether it holds data (a chunk name), zeros, or nothing worth writing.

Manifests are JSON, committed last and atomically; a restore client reads them over
plain HTTP.  On disk a run of equal ``zero``/``unused`` entries is written as
``"zero*N"`` so a mostly empty 2 TB disk does not cost megabytes of JSON.
Stdlib only: the restore client imports this unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.errors import IntegrityError, UsageError
from appliance.formats.names import HASH_NAME, is_digest, is_image_name, is_version

FORMAT = 1
KINDS = ("hash", "zero", "unused")
TABLES = ("gpt", "mbr", "none")
MIB = 1024 * 1024
DEFAULT_CHUNK_SIZE = 4 * MIB
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 64 * MIB


def _bad(message: str) -> IntegrityError:
    return IntegrityError(
        f"manifest is not valid: {message}",
        hint="the manifest file was damaged or written by an incompatible tool; "
        "re-import or re-capture the image",
    )


@dataclass(frozen=True)
class Chunk:
    """One chunk index: ``hash`` (data named by ``digest``), ``zero`` (must read back as
    zeros) or ``unused`` (free space of a known filesystem: need not be written)."""

    kind: str
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise _bad(f"unknown chunk kind {self.kind!r}")
        if (self.kind == "hash") != (self.digest is not None):
            raise _bad(f"chunk kind {self.kind!r} with digest {self.digest!r}")
        if self.digest is not None and not is_digest(self.digest):
            raise _bad(f"chunk name {self.digest!r} is not a sha256 hex digest")


ZERO = Chunk("zero")
UNUSED = Chunk("unused")


@dataclass(frozen=True)
class Partition:
    """A partition found in the disk's table (informational, for ``show`` and checks).
    ``start``/``size`` are in bytes; ``type`` is a GPT type GUID or an MBR type ``0x83``."""

    number: int
    start: int
    size: int
    type: str
    name: str = ""
    fs: str = ""
    uuid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "start": self.start,
            "size": self.size,
            "type": self.type,
            "name": self.name,
            "fs": self.fs,
            "uuid": self.uuid,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partition:
        try:
            return cls(
                number=int(d["number"]),
                start=int(d["start"]),
                size=int(d["size"]),
                type=str(d.get("type", "")),
                name=str(d.get("name", "")),
                fs=str(d.get("fs", "")),
                uuid=str(d.get("uuid", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(f"partition entry {d!r}: {exc}") from exc


@dataclass(frozen=True)
class Disk:
    index: int
    size: int
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    table: str = "none"
    partitions: tuple[Partition, ...] = ()
    model: str = ""
    serial: str = ""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunks: tuple[Chunk, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise _bad(f"disk {self.index} has size {self.size}")
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE or self.chunk_size % 4096:
            raise _bad(f"disk {self.index} has chunk size {self.chunk_size}")
        if self.table not in TABLES:
            raise _bad(f"disk {self.index} has partition table {self.table!r}")
        for s in (self.logical_sector_size, self.physical_sector_size):
            if s < 512 or s & (s - 1):
                raise _bad(f"disk {self.index} has sector size {s}")
        if len(self.chunks) != self.chunk_count:
            raise _bad(
                f"disk {self.index} lists {len(self.chunks)} chunks, "
                f"its size needs {self.chunk_count}"
            )

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)

    def chunk_range(self, i: int) -> tuple[int, int]:
        """(offset, length) of chunk ``i`` on the disk; the last chunk may be short."""
        if not 0 <= i < self.chunk_count:
            raise IndexError(f"chunk index {i} outside disk {self.index}")
        offset = i * self.chunk_size
        return offset, min(self.chunk_size, self.size - offset)

    def digests(self) -> frozenset[str]:
        return frozenset(c.digest for c in self.chunks if c.digest is not None)

    def bytes_of(self, kind: str) -> int:
        return sum(self.chunk_range(i)[1] for i, c in enumerate(self.chunks) if c.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": self.size,
            "logical_sector_size": self.logical_sector_size,
            "physical_sector_size": self.physical_sector_size,
            "table": self.table,
            "partitions": [p.to_dict() for p in self.partitions],
            "model": self.model,
            "serial": self.serial,
            "chunk_size": self.chunk_size,
            "chunks": list(_encode_chunks(self.chunks)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Disk:
        try:
            return cls(
                index=int(d["index"]),
                size=int(d["size"]),
                logical_sector_size=int(d.get("logical_sector_size", 512)),
                physical_sector_size=int(d.get("physical_sector_size", 512)),
                table=str(d.get("table", "none")),
                partitions=tuple(Partition.from_dict(p) for p in d.get("partitions", [])),
                model=str(d.get("model", "")),
                serial=str(d.get("serial", "")),
                chunk_size=int(d.get("chunk_size", DEFAULT_CHUNK_SIZE)),
                chunks=tuple(_decode_chunks(d["chunks"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(f"disk entry: {exc!r}") from exc


def _encode_chunks(chunks: tuple[Chunk, ...]) -> Iterator[str]:
    i = 0
    while i < len(chunks):
        c = chunks[i]
        if c.digest is not None:
            yield c.digest
            i += 1
            continue
        n = 1
        while i + n < len(chunks) and chunks[i + n] == c:
            n += 1
        yield c.kind if n == 1 else f"{c.kind}*{n}"
        i += n


def _decode_chunks(items: list[str]) -> Iterator[Chunk]:
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"chunk entry {item!r}")
        kind, _, count = item.partition("*")
        if kind in ("zero", "unused"):
            n = int(count) if count else 1
            if n < 1:
                raise ValueError(f"chunk run {item!r}")
            yield from [ZERO if kind == "zero" else UNUSED] * n
        else:
            yield Chunk("hash", item)


@dataclass(frozen=True)
class Manifest:
    image: str
    version: str
    created: str
    note: str = ""
    source: str = ""
    hash: str = HASH_NAME
    disks: tuple[Disk, ...] = ()
    # What the capture found that a technician must know before restoring it (e.g. a
    # Windows that was not generalized); shown by `image show` and the console.
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not is_image_name(self.image):
            raise UsageError(
                f"{self.image!r} is not a valid image name",
                hint="use letters, digits, '.', '_' and '-' (no '/' or '..'), at most 64",
            )
        if not is_version(self.version):
            raise UsageError(
                f"{self.version!r} is not a version id",
                hint="versions look like 20261125T162431Z (see `slate image list`)",
            )
        if self.hash != HASH_NAME:
            raise _bad(f"hash {self.hash!r} is not supported (only {HASH_NAME})")
        if not self.disks:
            raise _bad("no disks")
        if [d.index for d in self.disks] != list(range(len(self.disks))):
            raise _bad("disk indexes are not 0, 1, 2...")

    @property
    def ref(self) -> str:
        return f"{self.image}@{self.version}"

    @property
    def logical_size(self) -> int:
        return sum(d.size for d in self.disks)

    def digests(self) -> frozenset[str]:
        out: set[str] = set()
        for d in self.disks:
            out |= d.digests()
        return frozenset(out)

    def with_name(self, image: str, version: str) -> Manifest:
        return replace(self, image=image, version=version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "image": self.image,
            "version": self.version,
            "created": self.created,
            "note": self.note,
            "source": self.source,
            "hash": self.hash,
            "disks": [d.to_dict() for d in self.disks],
        } | ({"warnings": list(self.warnings)} if self.warnings else {})

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=1) + "\n").encode()

    @classmethod
    def from_json(
        cls, text: str | bytes, *, image: str | None = None, version: str | None = None
    ) -> Manifest:
        """Parse a manifest.  ``image``/``version`` fill in (or override) the names, e.g.
        for a capture upload whose body carries neither."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad(f"not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise _bad("not a JSON object")
        if data.get("format", FORMAT) != FORMAT:
            raise _bad(f"format {data.get('format')!r} (this Slate reads format {FORMAT})")
        try:
            disks = data["disks"]
            if not isinstance(disks, list):
                raise TypeError("disks is not a list")
            return cls(
                image=image if image is not None else str(data["image"]),
                version=version if version is not None else str(data["version"]),
                created=str(data.get("created", "")),
                note=str(data.get("note", "")),
                source=str(data.get("source", "")),
                hash=str(data.get("hash", HASH_NAME)),
                disks=tuple(Disk.from_dict(d) for d in disks),
                warnings=_warnings(data.get("warnings", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(f"missing or wrong field: {exc!r}") from exc


def _warnings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 100:
        raise TypeError("warnings is not a list of at most 100 lines")
    return tuple(str(w)[:1000] for w in value)
