"""``/store/``: manifests and chunks, readable only with a job token and only what
that job may read (:mod:`appliance.http.scope`: a restore job its version; a capture
job the versions of its image committed before it was created, and their chunks).
Names are validated before any path is built.

While room sessions run, chunk bodies pass one token bucket at what the sessions leave
of the link (:meth:`appliance.roomcast.Roomcast.http_pace`; docs/roomcast.md, "One
link, many rooms"); manifests and every other answer are never paced."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, request

from appliance.errors import SlateError
from appliance.formats.names import is_digest, is_image_name, is_version
from appliance.http.auth import appliance, client_job, fail
from appliance.http.files import FileBody, send_path
from appliance.http.scope import may_read_chunk, readable_versions
from appliance.machines import timeline

bp = Blueprint("store_files", __name__, url_prefix="/store")

PACED_BLOCK = 16 * 1024  # bytes written at a time: 26 ms at 5 Mbit/s, small bursts for the queue


class PacedBody:
    """A chunk's :class:`FileBody` written in :data:`PACED_BLOCK`-sized blocks, each
    after ``take`` lets it go.  Not a FileBody, so the server writes it through Python
    instead of by sendfile: only while sessions run, at a fraction of the link."""

    def __init__(self, body: FileBody, take: Callable[[int], object]) -> None:
        self.body, self.take = body, take

    def __iter__(self) -> Iterator[bytes]:
        fd, left, pos = self.body.file.fileno(), self.body.count, self.body.offset
        while left > 0:
            self.take(min(PACED_BLOCK, left))
            block = os.pread(fd, min(PACED_BLOCK, left), pos)
            if not block:
                return  # the file shrank under us: the client sees a short body
            left -= len(block)
            pos += len(block)
            yield block

    def close(self) -> None:
        self.body.close()


def paced(response: Response, take: Callable[[int], object] | None) -> Response:
    """``response`` with its file body paced by ``take`` (None: as it is)."""
    if take is not None and isinstance(response.response, FileBody):
        response.response = PacedBody(response.response, take)
    return response


@bp.route("/manifests/<image>/<name>", methods=["GET", "HEAD"])
def manifest(image: str, name: str) -> Response:
    job = client_job()
    version = name.removesuffix(".json")
    if not name.endswith(".json") or not is_image_name(image) or not is_version(version):
        fail(404, "no such manifest")
    if image != job.image or version not in readable_versions(job):
        fail(403, f"job {job.id} may not read {image}@{version}", "only its own image")
    try:
        path = appliance().manifest_file(image, version)
    except SlateError as exc:
        fail(503, exc.message, exc.hint)
    return send_path(path, request, "application/json")


@bp.route("/chunks/<prefix>/<name>", methods=["GET", "HEAD"])
def chunk(prefix: str, name: str) -> Response:
    job = client_job()
    digest = name.removesuffix(".zst")
    if not name.endswith(".zst") or not is_digest(digest) or prefix != digest[:2]:
        fail(404, "no such chunk")
    if not may_read_chunk(job, digest):
        fail(403, f"job {job.id} may not read chunk {digest}", "only its own image's chunks")
    app = appliance()
    try:
        # A version arriving from its library: the chunk is read from there first.
        reading = job.action == "restore" and job.image and job.version
        path = (app.chunk_file(job.image, job.version, digest) if reading  # type: ignore[arg-type]
                else app.store.chunk_path(digest))  # fmt: skip
    except SlateError as exc:
        fail(503, exc.message, exc.hint or "the client asks again")
    if request.method == "GET":
        timeline.first_chunk(app.db(), job.host, job.id, digest)
    # A chunk's name is its content hash: the ETag never changes.
    response = send_path(path, request, "application/zstd", etag=digest)
    return paced(response, app.chunk_pace())
