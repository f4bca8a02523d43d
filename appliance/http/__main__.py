"""Serve only the HTTP side of a data directory (boot scripts, boot environment, client
API, store) — no DHCP, TFTP or DNS.  For tests and benchmarks that need a live appliance
in another process or namespace:

    python -m appliance.http HOME HOST PORT [--file URL=PATH ...] [--multicast-rate 90M]
                             [--tls-port N]

``--file /baseline.zst=/tmp/x.zst`` also serves one plain file through the same server and
sendfile path (a benchmark's baseline).  ``--tls-port N`` also runs the client channel
over TLS on HOST:N (appliance.http.server.client_tls_server).  Prints ``ready`` once
listening.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from flask import Response, request

from appliance.config import Layout
from appliance.http import create_app
from appliance.http.files import send_path
from appliance.http.server import HttpServer, client_tls_server
from appliance.roomcast import DEFAULT_GROUP, parse_group
from appliance.settings import Settings
from appliance.units import parse_rate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m appliance.http")
    parser.add_argument("home", type=Path)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--file", action="append", default=[], metavar="URL=PATH")
    parser.add_argument("--multicast-rate", default="", metavar="RATE", help="roomcast bit/s")
    parser.add_argument("--link-rate", default="", metavar="RATE", help="the imaging link's bit/s")
    parser.add_argument("--multicast-group", default=DEFAULT_GROUP, metavar="CIDR")
    parser.add_argument("--igmp-query-interval", type=float, default=60.0, metavar="S")
    parser.add_argument("--tls-port", type=int, default=0, metavar="N", help="client channel")
    args = parser.parse_args()
    settings = Settings(
        address=args.host,
        http_port=args.port,
        multicast_rate=parse_rate(args.multicast_rate),
        link_rate=parse_rate(args.link_rate),
        multicast_group=parse_group(args.multicast_group),
        igmp_query_interval=args.igmp_query_interval,
        client_tls_port=args.tls_port,
    )
    app = create_app(Layout(args.home), settings, plugins=False)
    for n, spec in enumerate(args.file):
        url, _, path = spec.partition("=")

        def view(path: Path = Path(path)) -> Response:
            return send_path(path, request, "application/octet-stream")

        app.add_url_rule(url, f"extra_file_{n}", view)
    # With the client channel, plain HTTP refuses the client API (listeners.PxeOnly).
    HttpServer(app, args.host, args.port, scope="pxe" if args.tls_port else None).start()
    if args.tls_port:
        client_tls_server(app, args.home, settings).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
