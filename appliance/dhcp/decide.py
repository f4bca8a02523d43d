"""Who is asking, and what to answer: pure functions of a packet (pixiecore's rule).

The contract with the composition (``appliance/server.py``)
-------------------------------------------------------------
The DHCP server calls ``boot_hook(client: ClientInfo) -> BootTarget | None`` for every
network-boot request it may answer:

* :class:`ClientInfo` describes the requester: ``mac`` (``aa:bb:…`` lower case),
  ``firmware`` (``"bios"`` | ``"uefi"`` | ``"uefi-http"`` | ``"ipxe"``, or ``""`` when
  the request is not a network boot or the architecture is unknown), ``arch`` (option 93
  code or None), ``is_pxe`` (option 60 starts with ``PXEClient`` or ``HTTPClient``),
  ``is_ipxe`` (user class ``iPXE`` or iPXE's option 175), ``user_class``,
  ``vendor_class``, ``uuid`` (option 97 as sent, ``""`` if absent), ``giaddr`` (relay
  address, ``0.0.0.0`` when not relayed), ``ciaddr``, ``requested_ip``, ``hostname``.
* :class:`BootTarget` says what that machine boots: ``script_url`` (handed to iPXE,
  conventionally ``http://ADDR:PORT/boot/<mac>.ipxe`` — :meth:`BootTarget.for_http`
  builds it), ``bios_file`` (``undionly.kpxe``), ``efi_file`` (``snponly.efi`` or
  ``ipxe.efi``), ``http_url`` (the ``http://`` URL of an EFI binary for UEFI HTTP boot;
  None = such clients are ignored), ``secure_boot`` (UEFI PXE gets ``shimx64.efi``, the
  first link of the signed shim → grub chain), ``next_server`` (TFTP server, default the
  DHCP server's own address).
* ``None`` means: stay silent in proxy mode; in full mode give an address without boot
  information.

Firmware → boot file: BIOS (arch 0) → ``bios_file``; UEFI x64 (7, 9) → ``efi_file`` (or
``shimx64.efi`` with ``secure_boot``); UEFI HTTP (16) → ``http_url`` with vendor class
``HTTPClient``; iPXE (any arch) → ``script_url``, except a BIOS iPXE ROM told to
``chainload`` (appliance/boot/chainload.py) → ``bios_file``.  Other architectures get
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from appliance.dhcp import options as o
from appliance.dhcp.leases import Pool
from appliance.dhcp.packet import BOOTREPLY, BOOTREQUEST, ZERO, Message

BIOS, EFI_BC, EFI_X64, EFI_X64_HTTP = 0, 7, 9, 16
SHIM_FILE = "shimx64.efi"
# PXE option 43 sub-option 6 (discovery control) = 8: skip boot-server discovery and
# download the boot file named in this offer (PXE 2.1 spec, table 2-1).
PXE_BOOT_FROM_FILE = bytes((6, 1, 8, 255))


@dataclass(frozen=True)
class ClientInfo:
    """A classified DHCP request (see the module docstring)."""

    mac: str
    xid: int
    message_type: int | None
    arch: int | None
    firmware: str
    is_pxe: bool
    is_ipxe: bool
    user_class: str
    vendor_class: str
    uuid: str
    giaddr: IPv4Address
    ciaddr: IPv4Address
    requested_ip: IPv4Address | None
    server_id: IPv4Address | None
    hostname: str

    @property
    def relayed(self) -> bool:
        return self.giaddr != ZERO

    @property
    def is_http(self) -> bool:
        return self.vendor_class.startswith("HTTPClient")


@dataclass(frozen=True)
class BootTarget:
    """What a network-booting machine is told to load (see the module docstring)."""

    script_url: str
    bios_file: str = "undionly.kpxe"
    efi_file: str = "snponly.efi"
    http_url: str | None = None
    secure_boot: bool = False
    next_server: IPv4Address | None = None
    chainload: bool = False  # a BIOS iPXE client gets bios_file, as plain PXE would

    @classmethod
    def for_http(cls, address: IPv4Address | str, port: int, mac: str, **kw: object) -> BootTarget:
        """The conventional target: iPXE fetches ``/boot/<mac>.ipxe`` from Slate's HTTP."""
        return cls(script_url=f"http://{address}:{port}/boot/{mac}.ipxe", **kw)  # type: ignore[arg-type]


def classify(req: Message) -> ClientInfo:
    """Describe a request.  Raises ParseError only for malformed options it must read."""
    vendor = o.as_text(req.get(o.VENDOR_CLASS) or b"")
    user = req.get(o.USER_CLASS) or b""
    is_pxe = vendor.startswith(("PXEClient", "HTTPClient"))
    # iPXE sends user class "iPXE" raw (not RFC 3004 length-prefixed) and option 175.
    is_ipxe = b"iPXE" in user or req.get(o.IPXE_ENCAP) is not None
    arch = _arch(req, vendor) if is_pxe else None
    requested, server_id = req.get(o.REQUESTED_IP), req.get(o.SERVER_ID)
    uuid = req.get(o.CLIENT_UUID)
    return ClientInfo(
        mac=req.mac,
        xid=req.xid,
        message_type=req.message_type,
        arch=arch,
        firmware=_firmware(arch, is_pxe, is_ipxe),
        is_pxe=is_pxe,
        is_ipxe=is_ipxe,
        user_class=o.as_text(user),
        vendor_class=vendor,
        uuid=o.as_uuid(uuid) if uuid is not None else "",
        giaddr=req.giaddr,
        ciaddr=req.ciaddr,
        requested_ip=o.as_ip(requested) if requested is not None else None,
        server_id=o.as_ip(server_id) if server_id is not None else None,
        hostname=o.as_text(req.get(o.HOSTNAME) or b""),
    )


def _arch(req: Message, vendor: str) -> int:
    value = req.get(o.CLIENT_ARCH)
    if value:
        return o.as_u16s(value)[0]
    # Older PXE ROMs omit option 93 but name the arch in option 60
    # ("PXEClient:Arch:00000:UNDI:002001"); the oldest name nothing and are BIOS.
    parts = vendor.split(":")
    if len(parts) >= 3 and parts[1] == "Arch" and parts[2].isdigit():
        return int(parts[2])
    return BIOS


def _firmware(arch: int | None, is_pxe: bool, is_ipxe: bool) -> str:
    if is_ipxe:
        return "ipxe"
    if not is_pxe:
        return ""
    return {BIOS: "bios", EFI_BC: "uefi", EFI_X64: "uefi", EFI_X64_HTTP: "uefi-http"}.get(
        arch if arch is not None else -1, ""
    )


def boot_file(client: ClientInfo, target: BootTarget) -> tuple[str, str] | None:
    """``(file or URL, vendor class to answer with)``, or None if we have nothing."""
    if client.firmware == "ipxe":
        if target.chainload and client.arch == BIOS:
            return target.bios_file, "PXEClient"
        return target.script_url, "PXEClient"
    if client.firmware == "bios":
        return target.bios_file, "PXEClient"
    if client.firmware == "uefi":
        return (SHIM_FILE if target.secure_boot else target.efi_file), "PXEClient"
    if client.firmware == "uefi-http" and target.http_url:
        return target.http_url, "HTTPClient"
    return None


def choose_pool(pools: Sequence[Pool], client: ClientInfo, local: IPv4Address) -> Pool | None:
    """The pool of the requester's subnet: the relay's (giaddr), else the client's own
    (a renewing client of a relayed subnet unicasts to us directly), else our interface's.
    """
    if client.relayed:
        places = [client.giaddr]
    else:
        places = [client.ciaddr, local] if client.ciaddr != ZERO else [local]
    for where in places:
        for pool in pools:
            if where in pool.network:
                return pool
    return None


def reply_base(req: Message, msg_type: int, server: IPv4Address) -> Message:
    """A reply skeleton echoing what RFC 2131 table 3 says to echo."""
    return Message(
        op=BOOTREPLY,
        xid=req.xid,
        chaddr=req.chaddr,
        htype=req.htype,
        hlen=req.hlen,
        flags=req.flags,
        giaddr=req.giaddr,
        options=((o.MESSAGE_TYPE, o.u8(msg_type)), (o.SERVER_ID, o.ip(server))),
    )


def with_boot(
    reply: Message, req: Message, client: ClientInfo, target: BootTarget, server: IPv4Address
) -> Message | None:
    """Add boot information for ``client`` to ``reply``; None if its arch is unknown."""
    chosen = boot_file(client, target)
    if chosen is None:
        return None
    filename, vendor = chosen
    extra: list[tuple[int, bytes]] = [(o.VENDOR_CLASS, vendor.encode())]
    if vendor == "PXEClient" and not client.is_ipxe:
        extra.append((o.VENDOR_SPECIFIC, PXE_BOOT_FROM_FILE))
    uuid = req.get(o.CLIENT_UUID)
    if uuid is not None:
        # Some UEFI PXE firmwares ignore offers that do not echo their GUID.
        extra.append((o.CLIENT_UUID, uuid))
    raw = filename.encode()
    if len(raw) > 127:  # does not fit the file field: option 67 only
        extra.append((o.BOOTFILE_NAME, raw))
        raw = b""
    nxt = target.next_server or server
    return reply.replace(siaddr=nxt, file=raw, options=reply.options + tuple(extra))


def proxy_reply(
    req: Message, client: ClientInfo, target: BootTarget | None, server: IPv4Address, port: int
) -> Message | None:
    """proxyDHCP: an OFFER to a PXE DISCOVER (port 67), an ACK to a REQUEST on 4011.

    Never an address (yiaddr stays 0).  None = stay silent.
    """
    if req.op != BOOTREQUEST or not client.is_pxe or target is None:
        return None
    if client.message_type == o.DISCOVER and port == 67:
        kind = o.OFFER
    elif client.message_type in (o.REQUEST, o.INFORM) and port == 4011:
        kind = o.ACK
    # A REQUEST on port 67 naming us selects our address-less offer: only a client that
    # does not understand proxyDHCP does that, and an ACK would leave it without an
    # address. Silence makes it fall back to the site server's offer.
    else:
        return None
    reply = reply_base(req, kind, server)
    if port == 4011:
        reply = reply.replace(ciaddr=req.ciaddr)
    return with_boot(reply, req, client, target, server)


def lease_options(pool: Pool, lease_seconds: int | None) -> tuple[tuple[int, bytes], ...]:
    """Network options of ``pool``; lease timers unless ``lease_seconds`` is None (INFORM)."""
    opts: list[tuple[int, bytes]] = []
    if lease_seconds is not None:
        opts += [
            (o.LEASE_TIME, o.u32(lease_seconds)),
            (o.RENEWAL_TIME, o.u32(lease_seconds // 2)),
            (o.REBINDING_TIME, o.u32(lease_seconds * 7 // 8)),
        ]
    opts += [
        (o.SUBNET_MASK, o.ip(pool.network.netmask)),
        (o.BROADCAST, o.ip(pool.network.broadcast_address)),
    ]
    if pool.router is not None:
        opts.append((o.ROUTER, o.ip(pool.router)))
    if pool.dns:
        opts.append((o.DNS_SERVERS, o.ips(pool.dns)))
    if pool.domain:
        opts.append((o.DOMAIN_NAME, pool.domain.encode()))
    return tuple(opts)


def full_reply(
    req: Message,
    client: ClientInfo,
    kind: int,
    address: IPv4Address | None,
    pool: Pool,
    target: BootTarget | None,
    server: IPv4Address,
) -> Message:
    """An OFFER/ACK (with the address), an INFORM's ACK (no lease), or a NAK."""
    reply = reply_base(req, kind, server)
    if kind == o.NAK:
        return reply.replace(options=(*reply.options, (o.MESSAGE, b"address not available")))
    inform = client.message_type == o.INFORM
    reply = reply.replace(
        yiaddr=ZERO if inform else (address or ZERO),
        ciaddr=req.ciaddr,
        options=reply.options + lease_options(pool, None if inform else pool.lease_seconds),
    )
    if target is not None and client.is_pxe:
        # An unknown architecture still gets its address, just no boot file.
        reply = with_boot(reply, req, client, target, server) or reply
    return reply


def finish(req: Message, reply: Message) -> Message:
    """Last touches of every reply: echo the relay agent information (RFC 3046 §2.2)."""
    agent = req.get(o.RELAY_AGENT_INFO)
    if agent is None or reply.get(o.RELAY_AGENT_INFO) is not None:
        return reply
    return reply.replace(options=(*reply.options, (o.RELAY_AGENT_INFO, agent)))


def destination(req: Message, reply: Message) -> tuple[IPv4Address, int]:
    """Where a reply to a port-67 request goes (RFC 2131 §4.1).

    To the relay when relayed; unicast to a client that already has its address; else
    broadcast (a unicast to yiaddr would need an ARP entry we cannot add portably).
    """
    if req.giaddr != ZERO:
        return req.giaddr, 67
    if reply.message_type != o.NAK and req.ciaddr != ZERO:
        return req.ciaddr, 68
    return IPv4Address("255.255.255.255"), 68
