"""The appliance's client API over ``http.client``: keep-alive connections (one per
thread), retries with backoff while the appliance or the link is away.  Chunks come
through :mod:`bootimage.client.fetcher` (pipelined on two connections, ``Range`` to
resume a chunk cut off mid-body).

A request gives up only when no request has succeeded for ``give_up_after`` seconds:
then :class:`Unreachable` is raised.  Answers the client cannot fix by retrying (401,
403, 404, 409, 400) raise at once, with the appliance's own message.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance.errors import Conflict, NotFound, PeerError, SlateError
from appliance.imagefmt.names import chunk_relpath

if TYPE_CHECKING:
    from bootimage.client.fetcher import Fetcher

API = "/api/client/v1"
TIMEOUT = 15.0  # a silent link is noticed after this long, then the request is retried
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Unreachable(SlateError):
    """The appliance stayed unreachable longer than the job allows."""


class Api:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        give_up_after: float = 600.0,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise PeerError(f"slate.url {url!r} is not an http:// URL")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.give_up_after = give_up_after
        self.log = log
        self.last_ok = time.monotonic()
        self.received = 0  # body bytes, for the rate shown to the technician
        self._local = threading.local()
        self._lock = threading.Lock()
        self._fetcher: Fetcher | None = None

    # -- one connection per thread ----------------------------------------------------
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def close(self) -> None:
        self._drop()
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    # -- requests -----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        headers: dict[str, str] | None = None,
        retry: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a 2xx answer, retrying network trouble."""
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        delay = 0.5
        while True:
            try:
                status, rhdrs, data = self._once(method, self.prefix + path, body, hdrs)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if status < 300:
                    self.succeeded(len(data))
                    return status, rhdrs, data
                if status not in RETRY_STATUS:
                    raise answer_error(method, path, status, data)
                problem = f"HTTP {status}"
            if not retry:
                raise Unreachable(f"{method} {path} failed: {problem}")
            self.back_off(method, path, problem, delay)
            delay = min(delay * 2, 10.0)

    def _once(
        self, method: str, path: str, body: bytes | None, hdrs: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self._conn()
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self._drop()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def succeeded(self, n: int) -> None:
        """A request got its answer (``n`` body bytes): the appliance is reachable."""
        with self._lock:
            self.last_ok = time.monotonic()
            self.received += n

    def back_off(self, method: str, path: str, problem: str, delay: float) -> None:
        """Wait ``delay`` s before a retry, or raise Unreachable when no request has
        succeeded for ``give_up_after`` s: the one retry policy of every client call."""
        away = time.monotonic() - self.last_ok
        if away > self.give_up_after:
            raise Unreachable(
                f"the appliance at {self.host}:{self.port} has been unreachable for "
                f"{away:.0f} s (last error: {problem})",
                hint="check the network and that `slate serve` runs; the job can be retried",
            )
        self.log(f"{method} {path}: {problem}; retrying in {delay:.1f} s")
        time.sleep(delay)

    # -- the calls the client makes ---------------------------------------------------
    def get_json(self, path: str) -> Any:
        return json.loads(self.request("GET", path)[2])

    def post_json(self, path: str, obj: Any, *, retry: bool = True) -> Any:
        data = self.request("POST", API + path, json.dumps(obj).encode(), retry=retry)[2]
        return json.loads(data) if data else None

    def job(self) -> dict[str, Any]:
        return dict(self.get_json(API + "/job"))

    def fetch_chunk_view(self, digest: str, store: str = "/store/") -> memoryview:
        """The stored zstd frame of a chunk, in this thread's reusable buffer, pipelined
        with the other threads' requests (:mod:`bootimage.client.fetcher`; a body cut off
        midway resumes with Range): valid until the same thread fetches again."""
        from bootimage.client.fetcher import Fetcher

        with self._lock:
            if self._fetcher is None:
                self._fetcher = Fetcher(self)
            fetcher = self._fetcher
        return fetcher.fetch(self.prefix + store.rstrip("/") + "/" + chunk_relpath(digest))

    def put_chunk(self, digest: str, frame: bytes) -> None:
        self.request(
            "PUT",
            f"{API}/capture/chunk/{digest}",
            frame,
            headers={"Content-Type": "application/zstd"},
        )


def answer_error(method: str, path: str, status: int, data: bytes) -> SlateError:
    """The error an answer the client cannot fix by retrying stands for, with the
    appliance's own message and hint."""
    try:
        body = json.loads(data)
        message, hint = str(body.get("error", "")), body.get("hint")
    except (ValueError, AttributeError):
        message, hint = data[:200].decode(errors="replace"), None
    text = f"the appliance refused {method} {path} (HTTP {status}): {message}"
    if status == 404:
        return NotFound(text, hint=hint)
    if status == 409:
        return Conflict(text, hint=hint or "the job has ended or was cancelled")
    return PeerError(text, hint=hint)
