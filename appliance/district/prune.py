"""Retention in the bucket: `slate library prune` at the publishing appliance
(docs/district.md, "Retention in the bucket").

Each image's versions in the library are split by the image's own retention rules (its
policy, ``slate image policy``: keep last/daily/weekly/monthly; the same
:func:`appliance.backups.retention.plan` the store's prune uses); the library's newest
version of an image is always kept.  A version that goes loses its manifest first (from
then on no school fetches it), then its signature.  A chunk goes only when no manifest
left in the library names it *and* it is older than the grace period: a publisher that
is uploading a version's chunks (its manifest is put last) is never robbed of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from appliance.backups import retention
from appliance.district.bucket import Bucket
from appliance.district.sync import _sig_relpath, versions
from appliance.errors import IntegrityError
from appliance.formats.manifest import Manifest
from appliance.formats.names import manifest_relpath
from appliance.refs import version_time
from appliance.store import policy as policies

GRACE = timedelta(hours=48)
NEWEST = "newest in the library"


@dataclass
class BucketPrune:
    dry_run: bool
    grace_seconds: float
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # image → rules/keep/remove
    removed: list[str] = field(default_factory=list)  # image@version, manifests deleted
    chunks_removed: list[str] = field(default_factory=list)  # digests
    chunks_kept_young: int = 0  # named by no manifest, but within the grace period
    chunks_kept: int = 0  # named by a manifest left in the library

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "grace_seconds": self.grace_seconds,
                "images": self.images, "removed": self.removed,
                "chunks_removed": self.chunks_removed, "chunks_kept": self.chunks_kept,
                "chunks_kept_young": self.chunks_kept_young}  # fmt: skip


# -- the pure parts -----------------------------------------------------------------------
def plan_versions(
    found: list[str], rules: retention.Rules, tz: tzinfo | None = None
) -> retention.Plan:
    """The image's versions in the library split by ``rules``; the newest always stays."""
    protected = {max(found, key=version_time): NEWEST} if found else {}
    return retention.plan(found, rules, protected, tz)


def unneeded_chunks(
    chunks: Mapping[str, datetime], named: set[str] | frozenset[str], now: datetime,
    grace: timedelta,
) -> tuple[list[str], int]:  # fmt: skip
    """(digests to delete, how many unnamed ones are still within ``grace``): a chunk goes
    when no kept manifest names it and it was written before ``now - grace``."""
    old, young = [], 0
    for digest, written in sorted(chunks.items()):
        if digest in named:
            continue
        if written <= now - grace:
            old.append(digest)
        else:
            young += 1
    return old, young


# -- the bucket ---------------------------------------------------------------------------
def _chunks(bucket: Bucket) -> dict[str, datetime]:
    """{digest: when its object was written} of every chunk in the library."""
    return {
        o.key.rsplit("/", 1)[-1].removesuffix(".zst"): o.written or datetime.now(UTC)
        for o in bucket.objects("chunks/")
        if o.key.endswith(".zst")
    }


def _images(bucket: Bucket) -> list[str]:
    return sorted({k.split("/", 2)[1] for k in bucket.keys("manifests/") if k.count("/") >= 2})


def prune(
    bucket: Bucket,
    conn: sqlite3.Connection,
    *,
    dry_run: bool = False,
    grace: timedelta = GRACE,
    now: datetime | None = None,
    tz: tzinfo | None = None,
) -> BucketPrune:
    now = now or datetime.now(UTC)
    result = BucketPrune(dry_run, grace.total_seconds())
    kept: dict[str, list[str]] = {}
    for image in _images(bucket):
        pol = policies.get(conn, image)
        rules = retention.Rules(pol.keep_last, pol.keep_daily, pol.keep_weekly, pol.keep_monthly)
        found = versions(bucket, image)
        decided = plan_versions(found, rules, tz)
        result.images[image] = {"rules": pol.describe(), "keep": decided.keep,
                                "remove": decided.remove}  # fmt: skip
        kept[image] = sorted(decided.keep)
        for version in decided.remove:
            if not dry_run:
                bucket.delete(manifest_relpath(image, version))  # first: no school fetches it
                bucket.delete(_sig_relpath(image, version))
            result.removed.append(f"{image}@{version}")
    # What the manifests left name, listed again after the chunks were (a version
    # published meanwhile counts too: its chunks were in the bucket before its manifest).
    chunks = _chunks(bucket)
    if not dry_run:
        kept = {image: versions(bucket, image) for image in _images(bucket)}
    named: set[str] = set()
    for image, vs in kept.items():
        for version in vs:
            data = bucket.get(manifest_relpath(image, version))
            try:
                named |= Manifest.from_json(data).digests()
            except (ValueError, KeyError, TypeError) as exc:
                raise IntegrityError(
                    f"{image}@{version}: its manifest in the library cannot be read ({exc});"
                    " no chunk was deleted",
                ) from None
    old, result.chunks_kept_young = unneeded_chunks(chunks, named, now, grace)
    result.chunks_kept = sum(1 for d in chunks if d in named)
    if not dry_run and old:
        from appliance.formats.names import chunk_relpath

        bucket.delete_many([chunk_relpath(d) for d in old])
    result.chunks_removed = old
    return result
