"""The image library as the console shows it (over appliance.store.Store's public API
and the reads of its index, appliance.store.index)."""

from __future__ import annotations

from typing import Any

from appliance.store import index
from webui.backend import in_use, slate


def _name(entry: Any) -> str:
    return entry if isinstance(entry, str) else str(entry.name)


def image_names() -> list[str]:
    return sorted(_name(e) for e in slate().store.images())


def _sizes(image: str, version: str) -> tuple[int, int]:
    return index.sizes(slate().db(), image, version) or (0, 0)


def version_dict(m: Any, busy: frozenset[tuple[str, str]]) -> dict[str, Any]:
    logical, stored = _sizes(m.image, m.version)
    marks = slate().store.marks(m.image).get(m.version, frozenset())
    return {
        "promoted": "candidate" not in marks,
        "keep": "keep" in marks,
        "image": m.image,
        "version": m.version,
        "created": m.created,
        "note": m.note,
        "source": m.source,
        "warnings": list(m.warnings),
        "logical_size": logical or m.logical_size,
        "stored_size": stored,
        "disks": [_disk(d) for d in m.disks],
        "in_use": (m.image, m.version) in busy,
        "verify": _verifier().status(m.image, m.version),
    }


def _disk(d: Any) -> dict[str, Any]:
    return {
        "index": d.index,
        "size": d.size,
        "table": d.table,
        "model": d.model,
        "serial": d.serial,
        "logical_sector_size": d.logical_sector_size,
        "chunk_size": d.chunk_size,
        "partitions": [p.to_dict() for p in d.partitions],
    }


def images() -> list[dict[str, Any]]:
    """Every image with its versions, newest version first."""
    busy = in_use()
    store = slate().store
    out = []
    for name in image_names():
        versions = sorted(store.versions(name), key=lambda m: m.version, reverse=True)
        out.append({"name": name, "versions": [version_dict(m, busy) for m in versions]})
    return out


def image(name: str) -> dict[str, Any]:
    """One image, each version with what it shares with the other versions of the library."""
    store = slate().store
    busy = in_use()
    versions = sorted(store.versions(name), key=lambda m: m.version, reverse=True)
    if not versions:
        store.resolve(name)  # raises NotFound with the store's hint
    every = {(n, m.version): m.digests() for n in image_names() for m in store.versions(n)}
    rows = []
    for m in versions:
        own = every[(m.image, m.version)]
        others: set[str] = set()
        for key, digests in every.items():
            if key != (m.image, m.version):
                others |= digests
        shared = own & others
        d = version_dict(m, busy)
        d["chunks"] = len(own)
        d["shared_chunks"] = len(shared)
        d["shared_bytes"] = sum(_stored(store, h) for h in shared)
        rows.append(d)
    return {"name": name, "versions": rows, "identity": image_identity(name)}


def image_identity(name: str) -> bool:
    """Whether restores of ``name`` write each machine's identity (appliance.machines.identity)."""
    from appliance.machines import identity

    return identity.image_enabled(slate().db(), name)


def _stored(store: Any, digest: str) -> int:
    try:
        return int(store.chunk_path(digest).stat().st_size)
    except OSError:
        return 0


def choices() -> list[tuple[str, str]]:
    """(value, label) of every restorable version for a select box, newest first."""
    out = []
    for img in images():
        newest = next((v["version"] for v in img["versions"] if v["promoted"]), None)
        for v in img["versions"]:
            label = f"{img['name']} @ {v['version']}"
            if v["version"] == newest:
                label += " (newest promoted)"
            elif not v["promoted"]:
                label += " (candidate)"
            if v["note"]:
                label += f" — {v['note']}"
            out.append((f"{img['name']}@{v['version']}", label))
    return out


def _verifier() -> Any:
    from flask import current_app

    return current_app.extensions["slate.console.verifier"]


def start_verify(name: str, version: str) -> dict[str, Any]:
    """Start reading back every chunk of one version (in the background)."""
    status: dict[str, Any] = _verifier().start(slate().store, name, version)
    return status


def verify_status(name: str, version: str) -> dict[str, Any]:
    slate().store.load(name, version)  # NotFound for a version that does not exist
    return _verifier().status(name, version) or {"state": "never"}


def set_note(name: str, version: str, note: str) -> None:
    """Change a version's note (the store rewrites the manifest atomically; chunks stay)."""
    slate().store.set_note(name, version, note)


def remove(name: str, version: str) -> None:
    """Delete a version, refused while an unfinished job uses it."""
    from appliance.errors import Conflict

    if (name, version) in in_use():
        raise Conflict(
            f"{name}@{version} is used by an unfinished job",
            hint="wait for the job to end or cancel it, then delete the version",
        )
    slate().store.remove(name, version)
