"""The DHCP/BOOTP message: a frozen dataclass with ``parse(bytes)`` and ``build(msg)``.

Pure code, no sockets (h11's rule: the caller owns the I/O).  ``parse`` raises only
:class:`~appliance.dhcp.options.ParseError` for anything malformed, and
``parse(build(m)) == m`` holds for every valid message ``m``.

Options are kept as an ordered tuple of ``(code, value)`` with one entry per code:
instances split across the packet (RFC 3396) are joined, and options carried in an
overloaded ``file``/``sname`` field (option 52) are moved into the tuple, leaving that
field empty.  ``build`` never overloads; it splits values longer than 255 bytes.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from appliance.dhcp import options as o
from appliance.dhcp.options import ParseError

BOOTREQUEST, BOOTREPLY = 1, 2
MAGIC = b"\x63\x82\x53\x63"
FLAG_BROADCAST = 0x8000
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes, RFC 2131 §2
MIN_SIZE = 300  # BOOTP minimum; some PXE ROMs ignore shorter replies
ZERO = IPv4Address(0)


@dataclass(frozen=True)
class Message:
    """One DHCP message.  Validates itself; see the module docstring for options."""

    op: int
    xid: int
    chaddr: bytes  # all 16 bytes of the field; ``mac`` is the first ``hlen``
    options: tuple[tuple[int, bytes], ...] = ()
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    sname: bytes = b""
    file: bytes = b""
    _index: dict[int, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_ranges(self)
        codes = [code for code, _ in self.options]
        if len(codes) != len(set(codes)):
            raise ValueError("each option code may appear once")
        if any(not 0 < code < 255 or code == o.OVERLOAD for code in codes):
            raise ValueError("option codes must be 1..254 (52 is set by the codec)")
        object.__setattr__(self, "_index", dict(self.options))

    def get(self, code: int) -> bytes | None:
        return self._index.get(code)

    @property
    def message_type(self) -> int | None:
        value = self.get(o.MESSAGE_TYPE)
        return value[0] if value and len(value) == 1 else None

    @property
    def mac(self) -> str:
        """The hardware address as ``aa:bb:…`` (lower case, ``hlen`` bytes)."""
        return ":".join(f"{b:02x}" for b in self.chaddr[: min(self.hlen, 16)])

    def replace(self, **changes: object) -> Message:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _check_ranges(m: Message) -> None:
    for name, bits in (("op", 8), ("htype", 8), ("hlen", 8), ("hops", 8), ("xid", 32)):
        if not 0 <= getattr(m, name) < 1 << bits:
            raise ValueError(f"{name} out of range")
    if not 0 <= m.secs < 1 << 16 or not 0 <= m.flags < 1 << 16:
        raise ValueError("secs/flags out of range")
    if len(m.chaddr) != 16 or len(m.sname) > 64 or len(m.file) > 128:
        raise ValueError("chaddr must be 16 bytes, sname <= 64, file <= 128")
    if m.sname.endswith(b"\x00") or m.file.endswith(b"\x00"):
        raise ValueError("sname/file are stored without trailing NULs")
    if any(not isinstance(v, bytes) or len(v) > 65535 for _, v in m.options):
        raise ValueError("option values are bytes")


def parse(data: bytes) -> Message:
    """Decode one UDP payload.  Raises :class:`ParseError` if it is not a DHCP message."""
    if len(data) < HEADER.size + len(MAGIC):
        raise ParseError(f"packet of {len(data)} bytes is too short for DHCP")
    fields = HEADER.unpack_from(data)
    if data[HEADER.size : HEADER.size + 4] != MAGIC:
        raise ParseError("no DHCP magic cookie (plain BOOTP is not served)")
    if fields[0] not in (BOOTREQUEST, BOOTREPLY):
        raise ParseError(f"unknown BOOTP op {fields[0]}")
    sname, file = fields[12:14]
    found: dict[int, bytearray] = {}
    o.scan(data[HEADER.size + 4 :], found, "options")
    overload = found.pop(o.OVERLOAD, None)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise ParseError("option 52 (overload) has a bad value")
        # RFC 2131 §4.1: the file field is read before sname.
        if overload[0] & 1:
            o.scan(file, found, "file")
            file = b""
        if overload[0] & 2:
            o.scan(sname, found, "sname")
            sname = b""
        found.pop(o.OVERLOAD, None)  # an overload inside an overloaded field is meaningless
    try:
        return _message(fields, found, sname, file)
    except ValueError as exc:  # defensive: the checks above should make this unreachable
        raise ParseError(f"malformed DHCP message: {exc}") from exc


def _message(fields: tuple, found: dict[int, bytearray], sname: bytes, file: bytes) -> Message:
    op, htype, hlen, hops, xid, secs, flags = fields[:7]
    ciaddr, yiaddr, siaddr, giaddr = (IPv4Address(a) for a in fields[7:11])
    return Message(
        op=op,
        xid=xid,
        chaddr=fields[11],
        options=tuple((code, bytes(value)) for code, value in found.items()),
        htype=htype,
        hlen=hlen,
        hops=hops,
        secs=secs,
        flags=flags,
        ciaddr=ciaddr,
        yiaddr=yiaddr,
        siaddr=siaddr,
        giaddr=giaddr,
        sname=sname.rstrip(b"\x00"),
        file=file.rstrip(b"\x00"),
    )


def build(m: Message) -> bytes:
    """Encode ``m``; padded to the 300-byte BOOTP minimum."""
    header = HEADER.pack(
        m.op,
        m.htype,
        m.hlen,
        m.hops,
        m.xid,
        m.secs,
        m.flags,
        m.ciaddr.packed,
        m.yiaddr.packed,
        m.siaddr.packed,
        m.giaddr.packed,
        m.chaddr,
        m.sname,
        m.file,
    )
    data = header + MAGIC + o.encode(m.options)
    return data.ljust(MIN_SIZE, b"\x00")


def render(m: Message) -> str:
    """A stable text rendering, one field or option per line (golden files, debugging)."""
    lines = [
        f"op {'BOOTREQUEST' if m.op == BOOTREQUEST else 'BOOTREPLY'}",
        f"htype {m.htype} hlen {m.hlen} hops {m.hops}",
        f"xid 0x{m.xid:08x} secs {m.secs} flags 0x{m.flags:04x}",
        f"ciaddr {m.ciaddr} yiaddr {m.yiaddr} siaddr {m.siaddr} giaddr {m.giaddr}",
        f"chaddr {m.mac}",
        f"sname {m.sname!r}",
        f"file {m.file!r}",
    ]
    for code, value in m.options:
        lines.append(f"option {code:3d} {o.name(code)}: {o.render_value(code, value)}")
    return "\n".join(lines) + "\n"
