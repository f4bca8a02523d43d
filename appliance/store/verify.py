"""``slate image verify``: every chunk a version names exists and hashes right."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.errors import IntegrityError, SlateError
from appliance.formats import chunkio
from appliance.formats.manifest import Manifest
from appliance.store.library import Store


@dataclass
class VerifyResult:
    versions: list[str] = field(default_factory=list)
    chunks: int = 0
    bytes: int = 0  # uncompressed bytes checked
    damaged: dict[str, str] = field(default_factory=dict)  # digest → what is wrong
    users: dict[str, list[str]] = field(default_factory=dict)  # digest → versions
    bad_manifests: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.bad_manifests


def verify(
    store: Store,
    name: str | None = None,
    version: str | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> VerifyResult:
    result = VerifyResult()
    every = _all_manifests(store, result)
    if name is None:
        chosen = every
    elif version is None:
        chosen = store.versions(name) or [store.resolve(name)]
    else:
        chosen = [store.load(name, version)]
    result.versions = [m.ref for m in chosen]
    lengths = _lengths(chosen)
    advance = progress(sum(lengths.values())) if progress else None

    def check(item: tuple[str, int]) -> tuple[str, int, str]:
        digest, length = item
        try:
            chunkio.decode_chunk(digest, store.read_frame(digest), length)
            return digest, length, ""
        except (SlateError, OSError) as exc:
            return digest, length, str(exc)

    for digest, length, problem in chunkio.ordered_map(check, sorted(lengths.items()), workers):
        result.chunks += 1
        result.bytes += length
        if problem:
            result.damaged[digest] = problem
        if advance:
            advance(length)
    for m in every:
        for digest in m.digests() & result.damaged.keys():
            result.users.setdefault(digest, []).append(m.ref)
    return result


def _all_manifests(store: Store, result: VerifyResult) -> list[Manifest]:
    out = []
    for image in store.images():
        for v in store.version_ids(image):
            try:
                out.append(store.load(image, v))
            except IntegrityError as exc:
                result.bad_manifests[f"{image}@{v}"] = str(exc)
    return out


def _lengths(manifests: list[Manifest]) -> dict[str, int]:
    lengths: dict[str, int] = {}
    for m in manifests:
        for d in m.disks:
            for i, c in enumerate(d.chunks):
                if c.digest is not None and c.digest not in lengths:
                    lengths[c.digest] = d.chunk_range(i)[1]
    return lengths
