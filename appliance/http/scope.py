"""What the job of this request may read from the store and name in a commit — the
HTTP side of :mod:`appliance.jobs.scope` (restore: its version; capture: its bases and
its own uploads)."""

from __future__ import annotations

from collections.abc import Iterable

from appliance.errors import NotFound
from appliance.http.auth import appliance
from appliance.jobs import Job
from appliance.jobs import scope as jobscope


def readable_versions(job: Job) -> list[str]:
    """The versions of ``job.image`` whose manifests the job may read."""
    if job.image is None:
        return []
    if job.action == "capture":
        app = appliance()
        return jobscope.bases(app.db(), job.id, app.versions(job.image), job.created_at)
    if job.action == "restore" and job.version:
        return [job.version]
    return []


def may_read_chunk(job: Job, digest: str) -> bool:
    if job.image is None:
        return False
    if job.action == "capture":
        return bool(may_name(job, [digest]))
    for version in readable_versions(job):
        try:
            if digest in appliance().digests(job.image, version):
                return True
        except NotFound:
            continue
    return False


def may_name(job: Job, digests: Iterable[str]) -> set[str]:
    """Those of ``digests`` a capture job may name in its commit (and learn about)."""
    if job.action != "capture" or job.image is None:
        return set()
    app = appliance()
    versions = readable_versions(job)
    return jobscope.may_name(app.db(), job.id, job.image, versions, app.digests, digests)
