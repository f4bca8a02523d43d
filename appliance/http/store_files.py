"""``/store/``: manifests and chunks, readable only with a job token and only what
that job may read (:mod:`appliance.http.scope`: a restore job its version; a capture
job the versions of its image committed before it was created, and their chunks).
Names are validated before any path is built."""

from __future__ import annotations

from flask import Blueprint, Response, request

from appliance import timeline
from appliance.http.auth import appliance, client_job, fail
from appliance.http.files import send_path
from appliance.http.scope import may_read_chunk, readable_versions
from appliance.imagefmt.names import (
    chunk_relpath,
    is_digest,
    is_image_name,
    is_version,
    manifest_relpath,
)

bp = Blueprint("store_files", __name__, url_prefix="/store")


@bp.route("/manifests/<image>/<name>", methods=["GET", "HEAD"])
def manifest(image: str, name: str) -> Response:
    job = client_job()
    version = name.removesuffix(".json")
    if not name.endswith(".json") or not is_image_name(image) or not is_version(version):
        fail(404, "no such manifest")
    if image != job.image or version not in readable_versions(job):
        fail(403, f"job {job.id} may not read {image}@{version}", "only its own image")
    path = appliance().store.root / manifest_relpath(image, version)
    return send_path(path, request, "application/json")


@bp.route("/chunks/<prefix>/<name>", methods=["GET", "HEAD"])
def chunk(prefix: str, name: str) -> Response:
    job = client_job()
    digest = name.removesuffix(".zst")
    if not name.endswith(".zst") or not is_digest(digest) or prefix != digest[:2]:
        fail(404, "no such chunk")
    if not may_read_chunk(job, digest):
        fail(403, f"job {job.id} may not read chunk {digest}", "only its own image's chunks")
    path = appliance().store.root / chunk_relpath(digest)
    if request.method == "GET":
        timeline.first_chunk(appliance().db(), job.host, job.id, digest)
    # A chunk's name is its content hash: the ETag never changes.
    return send_path(path, request, "application/zstd", etag=digest)
