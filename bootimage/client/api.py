"""The appliance's client API over ``http.client``: keep-alive connections (one per
thread), retries with backoff while the appliance or the link is away.  Chunks come
through :mod:`bootimage.client.fetcher` (pipelined on two connections, ``Range`` to
resume a chunk cut off mid-body).

The API calls (the job, its manifest, state, progress, commit) go to ``url``; when it
is ``https://`` the connection is verified against one pinned certificate only (the one
the boot environment carries, :func:`pinned_context`: no system CA store, no host name),
and a certificate that is not the pinned one ends the run at once (:class:`PinMismatch`,
never retried).  Chunks come from ``store_url`` over plain HTTP: each is checked against
the manifest, which came over the pinned channel (docs/security.md).

A request gives up only when no request has succeeded for ``give_up_after`` seconds:
then :class:`Unreachable` is raised.  Answers the client cannot fix by retrying (401,
403, 404, 409, 400) raise at once, with the appliance's own message.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.errors import PeerError, SlateError
from appliance.formats.names import chunk_relpath
from bootimage.client.answers import RETRY_STATUS, TIMEOUT, answer_error
from bootimage.client.fetcher import Fetcher

API = "/api/client/v1"


class Unreachable(SlateError):
    """The appliance stayed unreachable longer than the job allows."""


class PinMismatch(SlateError):
    """The appliance's TLS certificate is not the one pinned in the boot environment."""


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def pin_der(pin: str | Path) -> bytes:
    """The pinned certificate (PEM file) as DER; a clear error if it is not one."""
    try:
        return ssl.PEM_cert_to_DER_cert(Path(pin).read_text())
    except (OSError, ValueError) as exc:
        raise PinMismatch(
            f"the pinned certificate {pin} cannot be read: {exc}",
            hint="the boot environment must come from this appliance (its initrd carries the pin)",
        ) from exc


def pinned_context(pin: str | Path) -> ssl.SSLContext:
    """TLS trusting the pinned certificate only: no system CA store; no host name check
    (the pin is the identity, whichever of the appliance's addresses was dialled)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=pin_der(pin))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a site's CA-signed cert pins too
    return ctx


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that also checks that the peer's certificate *is* the pin
    (not merely one the pin would vouch for)."""

    def __init__(self, host: str, port: int, *, pin: bytes, context: ssl.SSLContext,
                 timeout: float) -> None:  # fmt: skip
        super().__init__(host, port, timeout=timeout, context=context)
        self.pin = pin

    def connect(self) -> None:
        try:
            super().connect()
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise self._refused(exc.verify_message or str(exc)) from exc
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True) or b""
        if der != self.pin:
            self.close()
            raise self._refused(f"it presented SHA-256 {_fingerprint(der)}")

    def _refused(self, why: str) -> PinMismatch:
        return PinMismatch(
            f"the appliance at {self.host}:{self.port} is not the pinned one "
            f"(SHA-256 {_fingerprint(self.pin)}): {why}; nothing was written",
            hint="something else answers on the imaging network, or this boot environment "
            "was served by another appliance: check `slate serve`'s client certificate "
            "fingerprint, then boot the machine again",
        )


class Api:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        store_url: str | None = None,
        pin: str | Path | None = None,
        give_up_after: float = 600.0,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PeerError(f"slate.api {url!r} is not an http:// or https:// URL")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self._pin: bytes | None = None
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            if pin is None:
                raise PinMismatch(
                    f"slate.api {url!r} is HTTPS but this boot environment carries no pinned"
                    " certificate",
                    hint="boot the boot environment the appliance serves (its initrd carries"
                    " the pin)",
                )
            self._pin = pin_der(pin)
            self._context = pinned_context(pin)
        store = urllib.parse.urlsplit(store_url or url)
        if store.scheme != "http" or not store.hostname:
            raise PeerError(f"slate.url {store_url or url!r} (chunks) is not an http:// URL")
        self.store_host = store.hostname
        self.store_port = store.port or 80
        self.store_prefix = store.path.rstrip("/")
        self.token = token
        self.give_up_after = give_up_after
        self.log = log
        self.last_ok = time.monotonic()
        self.received = 0  # body bytes, for the rate shown to the technician
        self._local = threading.local()
        self._lock = threading.Lock()
        self._fetcher: Fetcher | None = None

    @property
    def secure(self) -> bool:
        """True when the API calls go over TLS verified against the pinned certificate."""
        return self._pin is not None

    # -- one connection per thread ----------------------------------------------------
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._pin is not None and self._context is not None:
                conn = PinnedHTTPSConnection(
                    self.host, self.port, pin=self._pin, context=self._context, timeout=TIMEOUT
                )
            else:
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
            except PinMismatch:
                self._drop()
                raise  # not the appliance: never retried, never answered
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
        with self._lock:
            if self._fetcher is None:
                self._fetcher = Fetcher(self)
            fetcher = self._fetcher
        return fetcher.fetch(self.store_prefix + store.rstrip("/") + "/" + chunk_relpath(digest))

    def put_chunk(self, digest: str, frame: bytes) -> None:
        self.request(
            "PUT",
            f"{API}/capture/chunk/{digest}",
            frame,
            headers={"Content-Type": "application/zstd"},
        )
