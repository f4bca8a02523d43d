"""Serving files: a response body the server can send with sendfile(2), with Range.

``FileBody`` is an ordinary WSGI iterable (any server, Flask's test client); our
:mod:`appliance.http.server` recognises it and hands the open file to the kernel
instead (zero-copy).  Paths reach here only after their names were validated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from flask import Request, Response

from appliance import metrics

BLOCK = 256 * 1024


class FileBody:
    """``count`` bytes of an open file from ``offset``."""

    def __init__(self, file: BinaryIO, offset: int, count: int) -> None:
        self.file = file
        self.offset = offset
        self.count = count

    def __iter__(self) -> Iterator[bytes]:
        left, pos = self.count, self.offset
        while left > 0:
            block = os.pread(self.file.fileno(), min(BLOCK, left), pos)
            if not block:
                return  # file shrank under us: the client sees a short body
            left -= len(block)
            pos += len(block)
            yield block

    def close(self) -> None:
        self.file.close()


def send_path(path: Path, request: Request, mimetype: str, etag: str | None = None) -> Response:
    """200/206/304/416 response for a file; 404 if it does not exist."""
    try:
        file = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return Response("not found\n", 404, mimetype="text/plain")
    st = os.fstat(file.fileno())
    size = st.st_size
    tag = etag or f"{st.st_mtime_ns:x}-{size:x}"
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{tag}"'}
    if request.if_none_match and request.if_none_match.contains(tag):
        file.close()
        return Response(status=304, headers=headers)
    offset, count, status = 0, size, 200
    if request.range is not None and len(request.range.ranges) == 1:
        span = request.range.range_for_length(size)
        if span is None:
            file.close()
            headers["Content-Range"] = f"bytes */{size}"
            return Response("range not satisfiable\n", 416, headers, mimetype="text/plain")
        offset, count, status = span[0], span[1] - span[0], 206
        headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{size}"
    headers["Content-Length"] = str(count)
    if request.method != "HEAD":
        metrics.count("slate_http_bytes_served_total", count)
    body = FileBody(file, offset, count)
    response = Response(body, status, headers, mimetype=mimetype, direct_passthrough=True)
    response.call_on_close(body.close)
    return response
