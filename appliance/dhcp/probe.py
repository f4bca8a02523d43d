"""Send one DHCP request as a chosen kind of client and print every reply as JSON.

    python -m appliance.dhcp.probe --interface eth0 --mac 52:54:00:00:00:01 --arch 0

What a technician (or a test, inside a network namespace) uses to see who answers a
PXE machine on a segment: the site's DHCP server (an address), Slate (boot
information), or nobody.  ``--giaddr`` sends it as a DHCP relay would (replies come
back to port 67).
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import time

from appliance.dhcp import options as o
from appliance.dhcp.craft import request
from appliance.dhcp.packet import build, parse

TYPES = {name.lower(): code for code, name in o.MESSAGE_TYPES.items()}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m appliance.dhcp.probe")
    p.add_argument("--interface", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--type", choices=sorted(TYPES), default="discover")
    p.add_argument("--arch", type=int, help="PXE client architecture (omit: plain client)")
    p.add_argument("--ipxe", action="store_true", help="send user class iPXE")
    # 0.0.0.0 here is the DHCP field's "none", not a listening address.
    p.add_argument("--giaddr", default="0.0.0.0", help="act as a relay with this address")  # noqa: S104
    p.add_argument("--ciaddr", default="0.0.0.0")  # noqa: S104
    p.add_argument("--requested")
    p.add_argument("--server-id")
    p.add_argument("--to", default="255.255.255.255", help="destination address")
    p.add_argument("--port", type=int, default=67)
    p.add_argument("--wait", type=float, default=3.0, help="seconds to collect replies")
    return p.parse_args(argv)


def describe(data: bytes, source: tuple[str, int]) -> dict[str, object]:
    msg = parse(data)
    return {
        "source": source[0],
        "sport": source[1],
        "type": o.MESSAGE_TYPES.get(msg.message_type or 0, "?"),
        "yiaddr": str(msg.yiaddr),
        "siaddr": str(msg.siaddr),
        "giaddr": str(msg.giaddr),
        "file": msg.file.decode("latin-1"),
        "options": {str(code): o.render_value(code, value) for code, value in msg.options},
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    relay = args.giaddr != "0.0.0.0"  # noqa: S104 (the field's "none")
    msg = request(
        args.mac.lower(),
        TYPES[args.type],
        xid=secrets.randbits(32),
        arch=args.arch,
        ipxe=args.ipxe,
        giaddr=args.giaddr,
        ciaddr=args.ciaddr,
        requested=args.requested,
        server_id=args.server_id,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.interface.encode() + b"\0")
    # Replies go to a relay's port 67, to a client's port 68, and on 4011 back to us.
    # Bound to one interface (SO_BINDTODEVICE above); broadcast replies need INADDR_ANY.
    sock.bind(("0.0.0.0", 67 if relay else 68 if args.port == 67 else 0))  # noqa: S104
    sock.sendto(build(msg), (args.to, args.port))
    deadline = time.monotonic() + args.wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(65535)
        except TimeoutError:
            break
        try:
            if parse(data).xid != msg.xid or parse(data).op != 2:
                continue
            print(json.dumps(describe(data, source)), flush=True)
        except o.ParseError:
            continue
    return 0


if __name__ == "__main__":
    sys.exit(main())
