"""The versions of one image as a history: sizes, marks, and what each version shares
with the one before it (a backup's cost is what it does not share)."""

from __future__ import annotations

from typing import Any

from appliance.store.library import Store


def history(store: Store, name: str) -> list[dict[str, Any]]:
    """One dict per version, oldest first."""
    marks = store.marks(name)
    sizes: dict[str, int] = {}

    def stored(digests: frozenset[str]) -> int:
        total = 0
        for d in digests:
            if d not in sizes:
                sizes[d] = store.stored_size([d])
            total += sizes[d]
        return total

    out: list[dict[str, Any]] = []
    previous: frozenset[str] = frozenset()
    for m in store.versions(name):
        own = m.digests()
        shared = own & previous
        out.append(
            {
                "image": m.image,
                "version": m.version,
                "created": m.created,
                "note": m.note,
                "source": m.source,
                "promoted": "candidate" not in marks.get(m.version, ()),
                "keep": "keep" in marks.get(m.version, ()),
                "logical_size": m.logical_size,
                "data_size": sum(d.bytes_of("hash") for d in m.disks),
                "stored_size": stored(own),
                "chunks": len(own),
                "shared_chunks": len(shared),
                "shared_bytes": stored(shared),
                "new_chunks": len(own - previous),
                "new_bytes": stored(own - previous),
            }
        )
        previous = own
    return out
