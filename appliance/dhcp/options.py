"""DHCP option codes, value encoders/decoders, and the option-area wire format.

Pure functions, no I/O.  The option area is decoded per RFC 2131 §4.1 and RFC 3396:
options may continue into the ``file`` and ``sname`` fields (option 52, overload),
and several instances of one code are concatenated in the order options, file, sname
("long options").  Encoding splits values longer than 255 bytes into consecutive
instances of the same code (RFC 3396 §7).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address

from appliance.errors import PeerError

PAD = 0
END = 255


class ParseError(PeerError):
    """A packet is malformed: the peer did something wrong.  The server drops it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="the packet was dropped; nothing to do unless it repeats")


# Option codes Slate reads or writes (RFC 2132, RFC 4578, RFC 3004, RFC 3396).
SUBNET_MASK = 1
ROUTER = 3
DNS_SERVERS = 6
HOSTNAME = 12
DOMAIN_NAME = 15
BROADCAST = 28
REQUESTED_IP = 50
LEASE_TIME = 51
OVERLOAD = 52
MESSAGE_TYPE = 53
SERVER_ID = 54
PARAM_REQUEST = 55
MESSAGE = 56
MAX_MESSAGE_SIZE = 57
RENEWAL_TIME = 58
REBINDING_TIME = 59
VENDOR_CLASS = 60
CLIENT_ID = 61
TFTP_SERVER_NAME = 66
BOOTFILE_NAME = 67
USER_CLASS = 77
RELAY_AGENT_INFO = 82
CLIENT_ARCH = 93
CLIENT_NDI = 94
CLIENT_UUID = 97
VENDOR_SPECIFIC = 43
IPXE_ENCAP = 175

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_TYPES = {
    DISCOVER: "DISCOVER",
    OFFER: "OFFER",
    REQUEST: "REQUEST",
    DECLINE: "DECLINE",
    ACK: "ACK",
    NAK: "NAK",
    RELEASE: "RELEASE",
    INFORM: "INFORM",
}

# code -> (name, kind); kind selects the rendering in `render_value`.
KNOWN: dict[int, tuple[str, str]] = {
    SUBNET_MASK: ("subnet-mask", "ip"),
    ROUTER: ("router", "ips"),
    DNS_SERVERS: ("dns-servers", "ips"),
    HOSTNAME: ("hostname", "str"),
    DOMAIN_NAME: ("domain-name", "str"),
    BROADCAST: ("broadcast", "ip"),
    REQUESTED_IP: ("requested-ip", "ip"),
    LEASE_TIME: ("lease-time", "u32"),
    OVERLOAD: ("overload", "u8"),
    MESSAGE_TYPE: ("message-type", "msgtype"),
    SERVER_ID: ("server-id", "ip"),
    PARAM_REQUEST: ("param-request", "codes"),
    MESSAGE: ("message", "str"),
    MAX_MESSAGE_SIZE: ("max-message-size", "u16"),
    RENEWAL_TIME: ("renewal-time", "u32"),
    REBINDING_TIME: ("rebinding-time", "u32"),
    VENDOR_CLASS: ("vendor-class", "str"),
    CLIENT_ID: ("client-id", "hex"),
    TFTP_SERVER_NAME: ("tftp-server", "str"),
    BOOTFILE_NAME: ("bootfile", "str"),
    USER_CLASS: ("user-class", "str"),
    RELAY_AGENT_INFO: ("relay-agent-info", "hex"),
    CLIENT_ARCH: ("client-arch", "u16s"),
    CLIENT_NDI: ("client-ndi", "hex"),
    CLIENT_UUID: ("client-uuid", "uuid"),
    VENDOR_SPECIFIC: ("vendor-specific", "hex"),
    IPXE_ENCAP: ("ipxe-encap", "hex"),
}


# --- value encoders/decoders -------------------------------------------------------


def ip(value: IPv4Address | str) -> bytes:
    return IPv4Address(value).packed


def ips(values: Iterable[IPv4Address | str]) -> bytes:
    return b"".join(IPv4Address(v).packed for v in values)


def u8(value: int) -> bytes:
    return value.to_bytes(1, "big")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def as_ip(value: bytes) -> IPv4Address:
    if len(value) != 4:
        raise ParseError(f"an IPv4 address option has {len(value)} bytes, not 4")
    return IPv4Address(value)


def as_int(value: bytes) -> int:
    if len(value) not in (1, 2, 4):
        raise ParseError(f"an integer option has {len(value)} bytes")
    return int.from_bytes(value, "big")


def as_u16s(value: bytes) -> list[int]:
    """Option 93 (client architecture) is a list of 16-bit codes (RFC 4578 §2.1)."""
    if len(value) % 2:
        raise ParseError("client architecture option has an odd length")
    return [int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2)]


def as_text(value: bytes) -> str:
    # Some firmwares NUL-terminate strings; the NUL is not part of the text.
    return value.rstrip(b"\x00").decode("latin-1")


def as_uuid(value: bytes) -> str:
    """Option 97: type 0 followed by the machine's 16-byte GUID.

    Firmwares send the SMBIOS UUID with its first three fields little-endian, as EFI
    GUIDs are stored (checked: OVMF and iPXE under QEMU ``-uuid``); decoding it that way
    gives the UUID that dmidecode, QEMU and the machine's label show.
    """
    if len(value) != 17 or value[0] != 0:
        raise ParseError(f"client UUID option is malformed ({len(value)} bytes)")
    return str(uuid.UUID(bytes_le=value[1:]))


# --- the option area -----------------------------------------------------------------


def scan(area: bytes, into: dict[int, bytearray], where: str) -> None:
    """Add the options of one area (options field, file or sname) to ``into``."""
    i, n = 0, len(area)
    while i < n:
        code = area[i]
        if code == PAD:
            i += 1
            continue
        if code == END:
            return
        if i + 1 >= n:
            raise ParseError(f"option {code} in the {where} field has no length byte")
        length = area[i + 1]
        if i + 2 + length > n:
            raise ParseError(f"option {code} in the {where} field runs past the end")
        into.setdefault(code, bytearray()).extend(area[i + 2 : i + 2 + length])
        i += 2 + length
    # A missing END is tolerated: several PXE ROMs omit it when the area is full.


def encode(options: Sequence[tuple[int, bytes]]) -> bytes:
    """The option area for ``options`` (without the magic cookie), END-terminated."""
    out = bytearray()
    for code, value in options:
        if len(value) == 0:
            out += bytes((code, 0))
            continue
        for start in range(0, len(value), 255):
            chunk = value[start : start + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(END)
    return bytes(out)


# --- rendering (golden files, logs) --------------------------------------------------


def name(code: int) -> str:
    return KNOWN.get(code, (f"option-{code}", "hex"))[0]


def render_value(code: int, value: bytes) -> str:
    """A stable human rendering of one option; raw hex when it does not decode."""
    kind = KNOWN.get(code, ("", "hex"))[1]
    try:
        return _render(kind, value)
    except (ParseError, ValueError):
        return "0x" + value.hex()


def _render(kind: str, value: bytes) -> str:
    if kind == "ip":
        return str(as_ip(value))
    if kind == "ips":
        if not value or len(value) % 4:
            raise ParseError("bad address list")
        return " ".join(str(IPv4Address(value[i : i + 4])) for i in range(0, len(value), 4))
    if kind in ("u8", "u16", "u32"):
        return str(as_int(value))
    if kind == "u16s":
        return " ".join(str(a) for a in as_u16s(value))
    if kind == "msgtype":
        return MESSAGE_TYPES.get(as_int(value), str(as_int(value)))
    if kind == "codes":
        return " ".join(str(c) for c in value)
    if kind == "str":
        return repr(value.decode("latin-1"))
    if kind == "uuid":
        return as_uuid(value)
    return "0x" + value.hex()
