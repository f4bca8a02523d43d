"""`slate serve` by default: the console on 127.0.0.1:8443 over HTTPS, the imaging
network's listener serving machines only, the client channel over TLS on port 8444
(the Secure Boot chain's grub.cfg names it and TFTP serves the pinned initrd)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from appliance import settings as settings_mod
from appliance.config import Layout
from appliance.errors import SlateError
from appliance.http.listeners import CLIENT_FILES, CLIENT_TLS, PxeOnly, ensure_certificate
from appliance.http.server import console_server
from appliance.jobs import Jobs
from appliance.machines import Inventory
from appliance.server import Appliance
from appliance.settings import Settings


def test_the_console_listens_on_loopback_by_default() -> None:
    defaults = Settings()
    assert defaults.console_listen == "127.0.0.1:8443"
    assert defaults.client_tls_port == 8444
    parser = argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    args = parser.parse_args(["--console-listen", "10.1.0.5:9443"])
    assert settings_mod.from_sources(parser.parse_args([]), env={}).console_listen == (
        "127.0.0.1:8443"
    )
    given = settings_mod.from_sources(args, env={})
    assert given.console_listen == "10.1.0.5:9443"


def test_the_imaging_listener_serves_machines_only_by_default(home: Path) -> None:
    app = Appliance(Layout(home), Settings(interface="eth0", address="10.0.0.1", prefix=24))
    server = app._http()
    assert isinstance(server._server.wsgi_app, PxeOnly)


def test_secure_boot_chain_names_the_channel_and_gets_the_pinned_initrd(home: Path) -> None:
    layout = Layout(home)
    app = Appliance(layout, Settings(interface="eth0", address="10.0.0.1", prefix=24))
    app._http()  # makes the app
    layout.bootimage.mkdir()
    (layout.bootimage / "initrd.img").write_bytes(b"built" * 100)
    cert, _ = ensure_certificate(home, ["10.0.0.1"], files=CLIENT_FILES)
    app.app().config[CLIENT_TLS] = {"port": 8444, "cert": cert}  # what the channel sets
    mac = "02:00:00:00:00:01"
    Inventory(app.db()).add_host(mac, "pc-01", actor="test")
    Jobs(app.db(), layout).capture(mac, "img", actor="test")
    cfg = app._tftp_generated(f"grub/grub.cfg-{mac}", "10.0.0.9")
    assert isinstance(cfg, bytes)
    assert b"slate.url=http://10.0.0.1 slate.api=https://10.0.0.1:8444 " in cfg
    initrd = app._tftp_generated("bootenv/initrd.img", "10.0.0.9")
    assert isinstance(initrd, Path) and initrd.parent == home / "bootenv-pinned"
    data = initrd.read_bytes()
    assert data.endswith(b"built" * 100) and cert.read_bytes() in data


def test_a_busy_console_port_names_its_setting(home: Path) -> None:
    from flask import Flask

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = Settings(console_listen=f"127.0.0.1:{port}")
        server = console_server(Flask("appliance.test"), home, settings)
        with pytest.raises(SlateError, match=f"cannot listen for HTTPS on 127.0.0.1:{port}") as err:
            server.start()
    assert err.value.hint == "pick another --console-listen, or stop what is using this one"
