"""``HttpServer``: the production WSGI server Slate runs its app under.

cheroot (CherryPy's threaded HTTP/1.1 server: keep-alive, a thread pool, idle
keep-alive connections parked in a selector rather than holding a thread), plus one
addition: a response body that is a :class:`~appliance.http.files.FileBody` is sent
with ``socket.sendfile`` (sendfile(2), zero-copy) instead of being read and written
through Python.  docs/http.md has the measurements behind this choice.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from appliance.errors import SlateError
from appliance.http.files import FileBody
from appliance.http.listeners import MarkTls, scoped

THREADS = 64  # ≥ 32 concurrent chunk streams plus API calls, without queueing
TIMEOUT = 30  # seconds a client may stall mid-request
# Connections the kernel queues before accept().  cheroot's default (5) makes a burst of
# connections (a classroom powering on, a hundred dashboards) wait for SYN retransmits:
# 100 connects at once took 14.6 s here with 5, 0.00 s with 128 (2026-12-02).
BACKLOG = 1024


class SendfileGateway(wsgi.Gateway_10):
    """WSGI 1.0 gateway that hands FileBody responses to the kernel."""

    def respond(self) -> None:
        response = self.req.server.wsgi_app(self.env, self.start_response)
        if not isinstance(response, FileBody):
            return self._respond_iterable(response)
        try:
            self.req.ensure_headers_sent()  # headers go out at once (unbuffered writer)
            if self.req.method != b"HEAD" and response.count:
                self.req.conn.socket.sendfile(response.file, response.offset, response.count)
        finally:
            response.close()

    def _respond_iterable(self, response: Any) -> None:
        try:
            for chunk in response:
                if chunk:
                    self.write(chunk)
        finally:
            self.req.ensure_headers_sent()
            if hasattr(response, "close"):
                response.close()


def stopping(app: Any) -> threading.Event:
    """Set while the app's listeners stop: streaming answers end at it."""
    ext = getattr(app, "extensions", None)
    if ext is None:  # a bare WSGI callable (tests): an event of its own
        return threading.Event()
    event: threading.Event = ext.setdefault("slate.stopping", threading.Event())
    return event


class HttpServer:
    """Serve a WSGI app on (host, port) in background threads; port 0 = pick one.

    ``scope`` (:mod:`appliance.http.listeners`): ``"pxe"`` serves only the machines'
    routes, ``"console"`` adds HSTS; None serves the app as it is.  ``tls`` = (certificate,
    key) files: HTTPS.  Each server has its own thread pool."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        threads: int = THREADS,
        scope: str | None = None,
        tls: tuple[Path, Path] | None = None,
        flag: str = "--http-port",
    ) -> None:
        self.app = app
        self.flag = flag  # the setting that picks this listener's address (for errors)
        self.host = host
        self.port = port
        self.tls = tls
        wsgi_app = scoped(app, scope)
        if tls is not None:
            wsgi_app = MarkTls(wsgi_app)  # is_tls_request() in the app's handlers
        self._server = wsgi.Server(
            (host, port), wsgi_app, numthreads=threads, server_name="slate",
            timeout=TIMEOUT, request_queue_size=BACKLOG,
        )  # fmt: skip
        self._server.gateway = SendfileGateway
        if tls is not None:
            self._server.ssl_adapter = BuiltinSSLAdapter(str(tls[0]), str(tls[1]))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        """Bind, listen and serve in a thread; return once connections are accepted."""
        try:
            self._server.prepare()
        except OSError as exc:
            raise SlateError(
                f"cannot listen for {'HTTPS' if self.tls else 'HTTP'} on {self.host}:{self.port}:"
                f" {exc.strerror or exc}",
                hint=f"pick another {self.flag}, or stop what is using this one",
            ) from exc
        self.port = int(self._server.bind_addr[1])
        stopping(self.app).clear()
        self._thread = threading.Thread(target=self._serve, name="slate-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.serve()

    def stop(self) -> None:
        # Long-lived answers (the console's live views) end now rather than hold their
        # threads through cheroot's shutdown timeout (5 s per listener).
        stopping(self.app).set()
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        facade = getattr(self.app, "extensions", {}).get("slate")
        if facade is not None:
            facade.close()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
