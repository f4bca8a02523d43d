"""The client channel over TLS, piece by piece: the kernel command line names both URLs,
the initrd served carries the pin (unpacked by the real cpio), the client's Api trusts
the pinned certificate only (real TLS listeners on 127.0.0.1), and plain HTTP refuses
the client API and the manifests while the channel runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from werkzeug.test import Client

from appliance.boot.decide import BootSpec, JobFacts
from appliance.boot.render import render_grub, render_ipxe
from appliance.config import Layout
from appliance.errors import PeerError
from appliance.http import create_app
from appliance.http.listeners import (
    CLIENT_FILES,
    CLIENT_TLS,
    TLS_ENVIRON,
    PxeOnly,
    client_api_url,
    ensure_certificate,
)
from appliance.http.pinned import ALIGN, pinned_initrd
from appliance.http.server import HttpServer
from bootimage.client.api import Api, PinMismatch
from bootimage.client.cmdline import PIN, parse_cmdline, settings_from

SPEC = BootSpec("env", "52:54:00:12:34:56", "pc1", JobFacts(7, "restore", "tok"))


def test_the_kernel_command_line_names_both_urls():
    script = render_ipxe(SPEC, "http://10.0.0.1:8080", "https://10.0.0.1:8444")
    assert "slate.url=http://10.0.0.1:8080 slate.api=https://10.0.0.1:8444 slate.job=7 " in script
    grub = render_grub(SPEC, "http://10.0.0.1:8080", "https://10.0.0.1:8444")
    assert "slate.api=https://10.0.0.1:8444" in grub
    assert "slate.api" not in render_ipxe(SPEC, "http://10.0.0.1:8080")  # no channel: as before
    words = parse_cmdline(
        "slate.url=http://a:80 slate.api=https://a:8444/ slate.job=1 slate.token=t"
    )
    settings = settings_from(words)
    assert (settings.url, settings.api, settings.pin) == ("http://a:80", "https://a:8444", PIN)
    assert PIN == "/etc/slate/appliance.pem"


def test_client_api_url_follows_the_address_the_machine_reached():
    assert client_api_url("http://10.0.0.1:8080", {}) is None
    config = {CLIENT_TLS: {"port": 8444, "cert": Path("c.pem")}}
    assert client_api_url("http://10.0.0.1:8080", config) == "https://10.0.0.1:8444"


def test_pinned_initrd_is_the_pin_then_the_built_one(tmp_path, home):
    built = tmp_path / "initrd.img"
    built.write_bytes(b"x" * 1000)
    cert, _ = ensure_certificate(home, ["10.0.0.1"], files=CLIENT_FILES)
    served = pinned_initrd(built, cert, home / "pinned")
    assert served is not None
    data = served.read_bytes()
    # First the pin (unpacked first, so a machine short of memory still has it), padded
    # with zeros to a 512-byte boundary, then the built initrd unchanged.
    pin_len = len(data) - 1000
    assert pin_len % ALIGN == 0 and data[pin_len:] == b"x" * 1000
    trailer = data.index(b"TRAILER!!!")
    assert not data[trailer + 16 : pin_len].strip(b"\0")
    out = tmp_path / "out"
    out.mkdir()
    listing = subprocess.run(["cpio", "-idmv"], input=data, cwd=out, check=True,
                             capture_output=True).stderr.decode()  # fmt: skip
    assert listing.split()[:3] == ["etc", "etc/slate", "etc/slate/appliance.pem"]
    assert (out / "etc/slate/appliance.pem").read_bytes() == cert.read_bytes()
    again = pinned_initrd(built, cert, home / "pinned")
    assert again == served and again.stat().st_mtime_ns == served.stat().st_mtime_ns
    built.write_bytes(b"y" * 2000)  # a rebuilt boot environment is pinned again
    assert pinned_initrd(built, cert, home / "pinned").read_bytes()[-2000:] == b"y" * 2000  # type: ignore[union-attr]
    assert pinned_initrd(tmp_path / "none.img", cert, home / "pinned") is None


def test_api_is_secure_only_over_https_with_a_pin(home):
    cert, _ = ensure_certificate(home, ["127.0.0.1"], files=CLIENT_FILES)
    assert not Api("http://10.0.0.1:80", "t").secure
    assert Api("https://10.0.0.1:8444", "t", store_url="http://10.0.0.1", pin=cert).secure
    with pytest.raises(PinMismatch, match="carries no pinned certificate"):
        Api("https://10.0.0.1:8444", "t", store_url="http://10.0.0.1")
    with pytest.raises(PinMismatch, match="cannot be read"):
        Api("https://10.0.0.1:8444", "t", store_url="http://10.0.0.1", pin=home / "missing.pem")
    with pytest.raises(PeerError, match="chunks"):
        Api("https://10.0.0.1:8444", "t", pin=cert)  # chunks need a plain http:// URL


@pytest.fixture
def tls_server(home):
    cert, key = ensure_certificate(home, ["127.0.0.1"], files=CLIENT_FILES)
    app = create_app(Layout(home), plugins=False)
    with HttpServer(app, "127.0.0.1", 0, threads=2, tls=(cert, key), scope="pxe") as server:
        yield server, cert


def test_api_talks_to_the_pinned_certificate(tls_server):
    server, cert = tls_server
    api = Api(server.url, "no-such-token", store_url="http://127.0.0.1:1", pin=cert)
    with pytest.raises(PeerError, match="HTTP 401"):  # TLS done: the app itself answered
        api.job()


def test_api_refuses_another_certificate_at_once(tls_server, tmp_path):
    server, _cert = tls_server
    other = tmp_path / "other"
    other.mkdir()
    wrong, _ = ensure_certificate(other, ["127.0.0.1"], files=CLIENT_FILES)
    said: list[str] = []
    api = Api(server.url, "t", store_url="http://127.0.0.1:1", pin=wrong, log=said.append)
    with pytest.raises(PinMismatch, match="is not the pinned one") as err:
        api.job()
    assert "nothing was written" in err.value.message
    assert said == []  # never retried


def test_plain_http_refuses_the_client_api_while_the_channel_runs(home):
    app = create_app(Layout(home))
    pxe = Client(PxeOnly(app))
    assert pxe.get("/api/client/v1/job").status_code == 401  # no channel: plain as before
    app.config[CLIENT_TLS] = {"port": 8444, "cert": Path("c.pem")}
    resp = pxe.get("/api/client/v1/job")
    assert resp.status_code == 403
    assert resp.json["error"] == "the client API and manifests are served over TLS only (port 8444)"
    assert pxe.get("/store/manifests/win11/20261125T100000Z.json").status_code == 403
    assert pxe.get(f"/store/chunks/ab/{'ab' * 32}.zst").status_code == 401  # chunks: plain
    assert pxe.get("/boot/52-54-00-12-34-56.ipxe").status_code == 200  # iPXE: plain
    over_tls = pxe.get("/api/client/v1/job", environ_base={TLS_ENVIRON: True})
    assert over_tls.status_code == 401  # the channel itself serves it
    # A client that refused the channel's certificate may still fail its job in clear.
    assert pxe.post("/api/client/v1/failed", json={"reason": "x"}).status_code == 401
    assert pxe.get("/api/client/v1/failed").status_code == 403
