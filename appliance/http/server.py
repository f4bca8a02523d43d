"""``HttpServer``: the production WSGI server Slate runs its app under.

cheroot (CherryPy's threaded HTTP/1.1 server: keep-alive, a thread pool, idle
keep-alive connections parked in a selector rather than holding a thread), plus one
addition: a response body that is a :class:`~appliance.http.files.FileBody` is sent
with ``socket.sendfile`` (sendfile(2), zero-copy) instead of being read and written
through Python.  docs/http.md has the measurements behind this choice.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from appliance.errors import SlateError
from appliance.http.files import FileBody
from appliance.http.listeners import (
    CLIENT_FILES,
    CLIENT_TLS,
    CONSOLE,
    PXE,
    MarkTls,
    ensure_certificate,
    fingerprint,
    scoped,
)
from appliance.settings import Settings

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
        context = getattr(self.app, "extensions", {}).get("slate")
        if context is not None:
            context.close()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the listeners of `slate serve` beside the imaging network's --------------------------
def console_server(app: Flask, home: Path, settings: Settings) -> HttpServer:
    """The console's own HTTPS listener for ``slate serve`` (``settings.console_listen``,
    ``console_cert``/``console_key``); logs its address and certificate fingerprint."""
    host, _, port = str(settings.console_listen).rpartition(":")
    host = host.strip("[]")
    if settings.console_cert:
        cert, key = Path(settings.console_cert), Path(settings.console_key)
        for path in (cert, key):
            if not path.is_file():
                raise SlateError(
                    f"{path} does not exist", hint="check --console-cert and --console-key"
                )
    else:
        cert, key = ensure_certificate(home, [host, "127.0.0.1", "localhost"])
    # Its own pool, larger than the live-update streams' cap (webui.api.events.MAX_STREAMS,
    # 16): with every stream place taken, pages still load; boots use other threads.
    server = HttpServer(app, host, int(port), scope=CONSOLE, tls=(cert, key), threads=32,
                        flag="--console-listen")  # fmt: skip
    logging.getLogger("slate.serve").info(
        "console on https://%s:%s/ (certificate %s, SHA-256 %s)",
        f"[{host}]" if ":" in host else host,
        port,
        cert,
        fingerprint(cert),
    )
    return server


def client_tls_server(app: Flask, home: Path, settings: Settings) -> HttpServer:
    """The client channel over TLS for ``slate serve``: the machines' routes (PXE scope)
    over HTTPS on the imaging address, port ``settings.client_tls_port``, with the data
    directory's client certificate; once it listens, boot scripts name it
    (``slate.api=``) and the initrd served carries its certificate."""
    cert, key = ensure_certificate(
        home, [settings.address], files=CLIENT_FILES, subject="Slate appliance"
    )

    class ClientTls(HttpServer):
        def start(self) -> None:
            super().start()
            app.config[CLIENT_TLS] = {"port": self.port, "cert": cert}
            logging.getLogger("slate.serve").info(
                "client channel on %s (certificate %s, SHA-256 %s)", self.url, cert,
                fingerprint(cert),
            )  # fmt: skip

        def stop(self) -> None:
            app.config.pop(CLIENT_TLS, None)
            super().stop()

    return ClientTls(app, settings.address, settings.client_tls_port, scope=PXE,
                     tls=(cert, key), threads=32, flag="--client-tls-port")  # fmt: skip
