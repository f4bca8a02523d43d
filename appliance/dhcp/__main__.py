"""Run the DHCP service alone: ``python -m appliance.dhcp --interface IF --address IP ...``

For tests, benchmarks and debugging inside a network namespace (``slate serve`` is the
product's way to run it).  Its boot hook sends every PXE client (or only ``--only-mac``
ones) to ``http://ADDRESS:HTTP_PORT/boot/<mac>.ipxe``.  Logs go to stderr; SIGTERM stops
it cleanly and prints the counters.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from appliance import db
from appliance.config import Layout
from appliance.dhcp.decide import BootTarget, ClientInfo
from appliance.dhcp.leases import Pool
from appliance.dhcp.server import MODES, DhcpServer
from appliance.errors import SlateError


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m appliance.dhcp")
    p.add_argument("--interface", required=True)
    p.add_argument("--address", required=True, type=IPv4Address)
    p.add_argument("--mode", choices=MODES, default="proxy")
    p.add_argument("--network", help="subnet of --pool, e.g. 10.0.0.0/24")
    p.add_argument("--pool", action="append", default=[], help="FIRST-LAST[@NETWORK]")
    p.add_argument("--router", type=IPv4Address)
    p.add_argument("--dns", type=IPv4Address, action="append", default=[])
    p.add_argument("--domain", default="")
    p.add_argument("--lease-seconds", type=int, default=3600)
    p.add_argument("--home", type=Path, help="data directory holding slate.db")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--efi-file", default="snponly.efi")
    p.add_argument("--http-url", help="URL for UEFI HTTP boot clients")
    p.add_argument("--only-mac", action="append", default=[], help="answer only these MACs")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def _pools(args: argparse.Namespace) -> list[Pool]:
    pools = []
    for text in args.pool:
        rng, _, net = text.partition("@")
        network = IPv4Network(net or args.network, strict=False)
        extra = {"dns": tuple(args.dns), "domain": args.domain}
        router = args.router if args.router and args.router in network else None
        pools.append(
            Pool.parse(rng, network, router=router, lease_seconds=args.lease_seconds, **extra)
        )
    return pools


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(message)s")
    only = {m.lower() for m in args.only_mac}

    def hook(client: ClientInfo) -> BootTarget | None:
        if only and client.mac not in only:
            return None
        return BootTarget.for_http(
            args.address, args.http_port, client.mac, efi_file=args.efi_file, http_url=args.http_url
        )

    conn = db.connect(Layout(args.home).db) if args.home else None
    try:
        server = DhcpServer(
            args.interface, args.address, args.mode, hook, pools=_pools(args), conn=conn
        )
        server.start()
    except SlateError as exc:
        print(f"error: {exc}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    server.stop()
    print("stats " + " ".join(f"{k}={v}" for k, v in sorted(server.stats.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
