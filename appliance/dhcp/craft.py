"""Client-side requests, built the way real firmwares build them (tests, lab, debugging).

Pure: returns :class:`Message` values; sending them is the caller's business.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from appliance.dhcp import options as o
from appliance.dhcp.packet import BOOTREQUEST, FLAG_BROADCAST, ZERO, Message

PXE_VENDOR = {
    0: "PXEClient:Arch:00000:UNDI:002001",
    7: "PXEClient:Arch:00007:UNDI:003016",
    9: "PXEClient:Arch:00009:UNDI:003016",
    16: "HTTPClient:Arch:00016:UNDI:003016",
}


def chaddr(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", "").replace("-", "")).ljust(16, b"\x00")


def request(
    mac: str,
    msg_type: int,
    *,
    xid: int = 0x5A5A0001,
    arch: int | None = None,
    ipxe: bool = False,
    uuid: bytes | None = None,
    giaddr: IPv4Address | str = ZERO,
    ciaddr: IPv4Address | str = ZERO,
    requested: IPv4Address | str | None = None,
    server_id: IPv4Address | str | None = None,
    hostname: str = "",
) -> Message:
    """A client request; ``arch`` set = a PXE client (options 60, 93, 97 as firmwares send)."""
    opts: list[tuple[int, bytes]] = [(o.MESSAGE_TYPE, o.u8(msg_type))]
    if requested is not None:
        opts.append((o.REQUESTED_IP, o.ip(requested)))
    if server_id is not None:
        opts.append((o.SERVER_ID, o.ip(server_id)))
    if hostname:
        opts.append((o.HOSTNAME, hostname.encode()))
    if arch is not None:
        opts.append((o.CLIENT_ARCH, o.u16(arch)))
        opts.append((o.VENDOR_CLASS, PXE_VENDOR.get(arch, f"PXEClient:Arch:{arch:05d}").encode()))
        opts.append((o.CLIENT_UUID, b"\x00" + (uuid or bytes(range(16)))))
    if ipxe:
        # iPXE sends its user class raw (not RFC 3004 framed) plus option 175 listing
        # its features (here: 0x13 = HTTP support).
        opts.append((o.USER_CLASS, b"iPXE"))
        opts.append((o.IPXE_ENCAP, bytes((0x13, 1, 1))))
    opts.append((o.PARAM_REQUEST, bytes((1, 3, 6, 15, 43, 60, 66, 67))))
    return Message(
        op=BOOTREQUEST,
        xid=xid,
        chaddr=chaddr(mac),
        flags=FLAG_BROADCAST if IPv4Address(ciaddr) == ZERO else 0,
        hops=1 if IPv4Address(giaddr) != ZERO else 0,
        giaddr=IPv4Address(giaddr),
        ciaddr=IPv4Address(ciaddr),
        options=tuple(opts),
    )
