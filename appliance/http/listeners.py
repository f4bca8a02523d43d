"""Two listeners, one app: what each serves (docs/security.md).

* The **PXE listener** (the imaging network's address) serves only what machines need:
  the routes the appliance itself registers — boot scripts, the boot environment, the
  client API, the store, rooms.  A route a plugin adds (the web console and its JSON
  API) is 404 there, whatever the method.
* The **console listener** (``--console-listen``, 127.0.0.1:8443 by default) serves the
  console over HTTPS, with ``Strict-Transport-Security``.  Its certificate is the site's
  own, or one made at first start (self-signed, its SHA-256 fingerprint logged so a
  technician can check what the browser shows).

The decision is by route, not by path text: a request is matched against the app's URL
map and its view's module decides (``appliance.*`` = for machines).
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from appliance.config import Layout
from appliance.errors import SlateError
from appliance.secrets_file import write_secret

PXE = "pxe"
CONSOLE = "console"
CERT_FILE, KEY_FILE = Layout.CONSOLE_TLS  # the key 0600
# The client channel over TLS (the restore/capture client's API calls and manifests, on
# the imaging network): its own self-signed certificate, pinned in the initrd served.
CLIENT_FILES = Layout.CLIENT_TLS
CLIENT_TLS = "SLATE_CLIENT_TLS"  # app.config key: {"port": int, "cert": Path} when it runs
TLS_ONLY = ("/api/client/", "/store/manifests/")  # never on plain HTTP while it runs
# ... except the one call a client makes when the channel presented another certificate
# than its pin: it fails its job here, so the job fails loudly (a token can always fail
# its own job, and every chunk request carries it in clear anyway).
PLAIN_FAILED = "/api/client/v1/failed"
HSTS = "max-age=31536000"
# Set by HttpServer in the environ of every request that came over one of its TLS
# listeners; a WSGI key, so no header a client sends can set it.
TLS_ENVIRON = "slate.tls"

StartResponse = Callable[..., Any]


def is_machine_route(app: Flask, environ: dict[str, Any]) -> bool:
    """True when the request goes to a route the appliance registered (not a plugin's),
    or to no route at all (the app answers that 404 itself)."""
    adapter = app.url_map.bind_to_environ(environ)
    try:
        endpoint, _args = adapter.match()
    except MethodNotAllowed as exc:  # a route exists for other methods: whose is it?
        methods = sorted(exc.valid_methods or [])
        if not methods:
            return True
        try:
            endpoint, _args = adapter.match(method=methods[0])
        except HTTPException:
            return True
    except HTTPException:  # no route (404) or a slash redirect: nothing of a plugin's
        return True
    view = app.view_functions.get(str(endpoint))
    return view is not None and str(getattr(view, "__module__", "")).startswith("appliance.")


class PxeOnly:
    """WSGI app of the PXE listener: the console's routes answer 404."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not is_machine_route(self.app, environ):
            return NotFound("not on this interface")(environ, start_response)
        tls = self.app.config.get(CLIENT_TLS)
        path = str(environ.get("PATH_INFO", ""))
        plain = environ.get(TLS_ENVIRON) is not True
        failing = path == PLAIN_FAILED and environ.get("REQUEST_METHOD") == "POST"
        if tls and plain and path.startswith(TLS_ONLY) and not failing:
            return _tls_only(environ, start_response, tls["port"])
        return self.app(environ, start_response)


def _tls_only(environ: dict[str, Any], start_response: StartResponse, port: int) -> Any:
    """403: while the client channel over TLS runs, the client API and the manifests are
    served there only (so a token's calls and the manifests are never in clear)."""
    import json

    from werkzeug.wrappers import Response

    body = {
        "error": f"the client API and manifests are served over TLS only (port {port})",
        "hint": "boot the boot environment this appliance serves: its kernel command line"
        " names slate.api and its initrd carries the pinned certificate",
    }
    return Response(json.dumps(body), 403, mimetype="application/json")(environ, start_response)


class ConsoleOnly:
    """WSGI app of the console listener: HSTS on every answer it gives over TLS."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def with_hsts(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            if not any(k.lower() == "strict-transport-security" for k, _ in headers):
                headers = [*headers, ("Strict-Transport-Security", HSTS)]
            return start_response(status, headers, *exc)

        return self.app(environ, with_hsts)


class MarkTls:
    """WSGI middleware of a TLS listener: marks each request's environ (``TLS_ENVIRON``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[TLS_ENVIRON] = True
        return self.app(environ, start_response)


def is_tls_request() -> bool:
    """True inside a Flask request handler when the request came over a TLS listener
    (the client channel over TLS or the console listener); False over plain HTTP and
    outside a request."""
    return has_request_context() and request.environ.get(TLS_ENVIRON) is True


def scoped(app: Flask, scope: str | None) -> Any:
    """``app`` as the listener of ``scope`` serves it (None: everything, unchanged)."""
    if scope == PXE:
        return PxeOnly(app)
    if scope == CONSOLE:
        return ConsoleOnly(app)
    return app


# -- certificates ---------------------------------------------------------------------------
def ensure_certificate(
    home: Path,
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    *,
    files: tuple[str, str] = (CERT_FILE, KEY_FILE),
    subject: str = "Slate console",
) -> tuple[Path, Path]:
    """A certificate and key in the data directory, made at first start (the console's
    by default, the client channel's with ``files=CLIENT_FILES``): a self-signed P-256
    certificate for ``hosts`` (IP addresses and names), ten years."""
    cert_file, key_file = files
    cert, key = home / cert_file, home / key_file
    if cert.is_file() and key.is_file():
        return cert, key
    names = [f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in dict.fromkeys(hosts)]
    # openssl writes into a private directory (0700) beside them; the key then takes its
    # name as every secret file does (appliance.secrets_file), the certificate after it.
    with tempfile.TemporaryDirectory(dir=home, prefix=f".{cert_file}.") as work:
        tmp_key, tmp_cert = Path(work) / key_file, Path(work) / cert_file
        try:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", str(tmp_key), "-out", str(tmp_cert), "-days", "3650",
                 "-subj", f"/CN={subject}", "-addext", "subjectAltName=" + ",".join(names)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise SlateError(
                f"cannot make the certificate {cert}: {detail.strip()[:300]}",
                hint="install openssl, or give the site's own with --console-cert and"
                " --console-key",
            ) from exc
        write_secret(key, tmp_key.read_bytes())
        write_secret(cert, tmp_cert.read_bytes(), mode=0o644)
    return cert, key


def fingerprint(cert: Path) -> str:
    """SHA-256 of the certificate (DER), as browsers show it: ``AB:CD:…``."""
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def client_api_url(base_url: str, config: Mapping[str, Any]) -> str | None:
    """The client channel over TLS as the kernel command line names it
    (``https://ADDR:PORT``, ADDR the one ``base_url`` reached), or None when this
    appliance does not run it (``config``: the app's)."""
    from urllib.parse import urlsplit

    tls = config.get(CLIENT_TLS)
    host = urlsplit(base_url).hostname
    if not tls or not host:
        return None
    return f"https://{f'[{host}]' if ':' in host else host}:{tls['port']}"


def served_bootenv(layout: Layout, name: str, config: Mapping[str, Any]) -> Path:
    """The boot environment's file ``name`` as machines get it (HTTP and TFTP): the
    initrd with the client channel's certificate put first (:mod:`appliance.http.pinned`)
    while that channel runs, else the built file (``config``: the app's)."""
    from appliance.http.pinned import pinned_initrd

    built = layout.bootimage / name
    tls = config.get(CLIENT_TLS)
    if name != "initrd.img" or not tls:
        return built
    return pinned_initrd(built, tls["cert"], layout.bootenv_pinned) or built
