"""Restore: the job's image version onto the target disk(s).

Every data chunk whose bytes are not already on the disk is fetched, decompressed,
verified against its name and written at its offset (``chunkio.write_chunks``); a chunk
already right is not fetched (delta restore, and resume after an interruption); zero
chunks are written only where the disk is not already zero; ``unused`` chunks are
skipped.  Then fsync, move the GPT backup header to the end of a larger disk, re-read
the partition table, and grow the last partition when the job asks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from appliance.errors import DiskRefused
from appliance.formats.chunkio import write_chunks
from appliance.formats.manifest import Disk, Manifest
from bootimage.client import checkup, finish, hooks, identity, keep
from bootimage.client import disks as disks_mod
from bootimage.client.api import API, Api
from bootimage.client.progress import Reporter
from bootimage.client.roomcast import restore_room
from bootimage.client.select import Need, choose, truthy
from bootimage.client.target import BlockTarget, FileTarget, busy_reason, is_fresh, open_target


def restore(
    api: Api,
    job: dict[str, Any],
    reporter: Reporter,
    *,
    disk_paths: Sequence[str] = (),
    workers: int = 4,
    boot_next: bool = False,
) -> int:
    """Restore the job's image; returns the verified byte count.  ``boot_next``: the
    machine reboots afterwards, so on UEFI make its next boot the restored disk."""
    manifest = Manifest.from_json(api.request("GET", str(job["manifest"]))[2])
    reporter.log(f"restoring {manifest.ref}: {len(manifest.disks)} disk(s)")
    options = dict(job.get("options") or {})
    paths = list(disk_paths) or pick_disks(manifest, options.get("disk") or {}, reporter)
    if len(paths) < len(manifest.disks):
        raise DiskRefused(
            f"{manifest.ref} has {len(manifest.disks)} disks but only {len(paths)} target(s)"
            " were given",
            hint="give one --disk per image disk",
        )
    allow = truthy((options.get("disk") or {}).get("allow_removable"))
    targets: list[FileTarget] = []
    verified = 0
    try:
        for path, disk in zip(paths, manifest.disks, strict=False):
            targets.append(open_checked(path, disk, manifest.ref, allow_removable=allow))
        checkup.check_disks(api, [t.path for t in targets], reporter.log)  # SMART, before a write
        after = api.get_json(API + "/after")  # hooks and kept partitions (docs/hooks.md)
        plan = keep.check(manifest, targets[0], after.get("keep") or [], reporter.log)
        written = keep.mask(manifest, plan)  # what the write touches: not a kept partition
        api.post_json("/state", {"state": "running"})
        why_not = job.get("roomcast", "no roomcast on this appliance")
        if plan.ranges and not why_not:  # the room's chunk numbering is the whole version's
            why_not = "a kept partition is left as it is"
        if str(options.get("transport") or "auto") == "unicast" or why_not:
            reporter.log(f"restoring by HTTP: {why_not or 'the job asks for it'}")
            for target, disk in zip(targets, written.disks, strict=True):
                verified += restore_disk(api, job, written, disk, target, reporter, workers)
        else:  # the appliance decides at the join: a room session, or HTTP
            verified = restore_room(
                api, job, written, targets[: len(manifest.disks)], reporter, workers
            )
        store = str(job.get("store") or "/store/")
        verified += keep.write_edges(api, store, manifest.disks[0], targets[0], plan, reporter.log)
        api.post_json("/state", {"state": "verifying"})
        for target, disk in zip(targets, manifest.disks, strict=True):
            reporter.set_phase("finishing")
            finish.after_write(target, disk, grow=bool(options.get("grow")), log=reporter.log)
        identity.apply(api, [t.path for t in targets], job.get("identity"), reporter.log)
        hooks.run_all(after, job, manifest, targets, reporter.log)
        if boot_next:
            finish.boot_restored_next(targets[0], manifest.disks[0], reporter.log)
    finally:
        for target in targets:
            target.close()
    return verified


def restore_disk(
    api: Api,
    job: dict[str, Any],
    manifest: Manifest,
    disk: Disk,
    target: FileTarget,
    reporter: Reporter,
    workers: int,
) -> int:
    fresh = is_fresh(target)
    todo = disk.size - disk.bytes_of("unused")
    reporter.log(
        f"disk {disk.index} -> {target.path}: {todo / 2**20:,.0f} MiB of data and zeros"
        + (" (fresh file)" if fresh else " (chunks already on the disk are kept)")
    )
    reporter.start_phase("restore", disk.size)
    store = str(job.get("store") or "/store/")
    start = time.monotonic()
    received = api.received
    stats = write_chunks(
        target.fd,
        disk,
        lambda digest: api.fetch_chunk_view(digest, store),
        fresh=fresh,
        compare=not fresh,
        what=manifest.ref,
        on_progress=reporter.add,
        workers=workers,
        direct_fd=target.open_direct(),
    )
    target.fsync()
    took = max(time.monotonic() - start, 1e-6)
    fetched = api.received - received
    reporter.log(
        f"disk {disk.index}: {stats.verified / 2**20:,.0f} MiB verified, "
        f"{stats.written / 2**20:,.0f} MiB written, {stats.skipped / 2**20:,.0f} MiB left alone"
        f" in {took:.1f} s ({stats.verified / 2**20 / took:,.0f} MiB/s; "
        f"{fetched / 2**20:,.0f} MiB fetched at {fetched / 2**20 / took:,.1f} MiB/s)"
    )
    return stats.verified


def open_checked(path: str, disk: Disk, ref: str, *, allow_removable: bool = False) -> FileTarget:
    """Open ``path`` and refuse it, before writing a byte, if ``disk`` does not fit."""
    target = open_target(path)
    try:
        if isinstance(target, BlockTarget) and target.removable and not allow_removable:
            raise DiskRefused(
                f"refusing {path}: it is a removable disk",
                hint="set allow_removable in the job's disk hints if this is really the target",
            )
        need = Need(disk.size, disk.logical_sector_size, f"{ref} disk {disk.index}")
        size, sector = target.size, target.logical_sector_size
        if size < need.size:
            raise DiskRefused(
                f"{path} ({_size(size)}) is smaller than {need.label} ({_size(need.size)})",
                hint=f"make a version that fits it on the appliance: `slate image fit {ref} "
                f"--size {size}`, then restore that version (or use a larger disk)",
            )
        if sector is not None and sector != need.logical_sector_size:
            raise DiskRefused(
                f"{path} has {sector}-byte sectors, {need.label} has "
                f"{need.logical_sector_size}-byte sectors",
                hint="restore an image captured from a disk with the same sector size",
            )
        return target
    except BaseException:
        target.close()
        raise


def pick_disks(manifest: Manifest, hints: dict[str, Any], reporter: Reporter) -> list[str]:
    """Targets by the job's rule, for each disk of the image, found with udev."""
    found = disks_mod.discover()
    reporter.log("disks: " + (", ".join(d.describe() for d in found) or "none"))
    busy = {d.name for d in found if busy_reason(d.path)}
    chosen: list[str] = []
    for disk in manifest.disks:
        need = Need(disk.size, disk.logical_sector_size, f"{manifest.ref} disk {disk.index}")
        left = [d for d in found if d.path not in chosen]
        pick = choose(left, need, hints if disk.index == 0 else {}, busy)
        reporter.log(f"target for disk {disk.index}: {pick.describe()}")
        chosen.append(pick.path)
    return chosen


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
