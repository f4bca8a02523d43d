"""Roomcast's datagrams: bytes in, frozen dataclasses out, no sockets (the h11 way).

Shared by the appliance's sender and the receiver in the boot environment, so stdlib
only.  Two kinds of datagram travel on a session's multicast group:

* **data** — one piece of one chunk's stored zstd frame.  The chunk is named by its
  index in the session's *chunk table* (:func:`chunk_table`: the distinct chunk names of
  the manifest in disk order), never by an offset: where a chunk goes on the disk is
  what the authentic manifest says, and it is written only after its SHA-256 matches.
* **beacon** — several times a second: the session, a sequence number, the rate and
  where the sender is, so a seat knows multicast reaches it before any data does.

Every datagram ends in a **tag**: HMAC-SHA-256 under the session's key, truncated to 16
bytes (RFC 2104), over everything before it.  The key is made per session by the
appliance and reaches a seat only in the answer to its join, over the pinned TLS client
API; any machine on the VLAN can send to the group, none without the key can make a
datagram that verifies.  :class:`SessionKey` checks the tag before anything of the
datagram is believed.  (HMAC-SHA-256 rather than keyed BLAKE2b: with SHA-NI it costs
~2.9 µs per 1,468-byte datagram against ~4.1 µs here — docs/roomcast.md.)

Header (network byte order), 12 bytes::

    magic "SLRC" | version u8 | kind u8 | flags u16 | session u32

data then carries ``chunk u32 | piece u16 | pieces u16 | frame_len u32 | seq u32`` (16
bytes), the piece's bytes and the tag: piece ``p`` holds ``frame[p*piece_size :
(p+1)*piece_size]``, every piece but the last exactly ``piece_size`` long; ``seq``
counts the session's data datagrams (a replay shows itself by an old number).  A beacon
carries ``seq u32 | rate u64 (bit/s) | sent u64 | chunks u32 | cursor u32 | piece_size
u16 | state u8 | pad u8`` (32 bytes) and the tag; ``sent`` counts the data bytes sent so
far, so a seat can tell which share of them reached it (its *catch ratio*); a seat
believes only beacons whose ``seq`` goes forward.

:func:`decode` never raises: anything that is not a well-formed, authentic datagram of
this version comes back as :class:`Malformed` with the reason, for the receiver to count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from appliance.formats.manifest import Manifest

MAGIC = b"SLRC"
VERSION = 2  # 2: every datagram carries a tag, data a sequence number
KIND_DATA = 1
KIND_BEACON = 2
_HEAD = struct.Struct("!4sBBHI")
_DATA = struct.Struct("!IHHII")
_BEACON = struct.Struct("!IQQIIHBB")
TAG_SIZE = 16
KEY_SIZE = 32
HEADER_SIZE = _HEAD.size + _DATA.size  # 28 bytes before a data piece
BEACON_SIZE = _HEAD.size + _BEACON.size + TAG_SIZE
# MTU 1500 - IPv4 (20) - UDP (8) = 1472 bytes of UDP payload; 4 more are left for a
# VLAN tag on links that count it against the MTU.  Never fragment.
MAX_DATAGRAM = 1468
PIECE_SIZE = MAX_DATAGRAM - HEADER_SIZE - TAG_SIZE  # 1424 bytes of frame per datagram
MAX_PIECES = 0xFFFF
# Beacon states.
ACTIVE = 0
IDLE = 1  # nothing to send by multicast just now (seats take their own chunks by HTTP)
ENDING = 2  # the session is closing: finish by HTTP


class SessionKey:
    """A session's key: tags datagrams and checks them (HMAC-SHA-256, 16 bytes).

    The two padded key blocks are hashed once here; each datagram then costs one copy
    of each state and the hashing of its own bytes."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a roomcast session key is {KEY_SIZE} bytes, not {len(key)}")
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    @classmethod
    def from_hex(cls, text: object) -> SessionKey:
        """The key as the join answers it (hex); ``ValueError`` for anything else."""
        if not isinstance(text, str):
            raise ValueError("the session key must be a hex string")
        return cls(bytes.fromhex(text))

    def tag(self, body: bytes | bytearray | memoryview) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:TAG_SIZE]

    def verify(self, datagram: memoryview) -> bool:
        """Whether ``datagram`` ends in the tag of the bytes before it."""
        if len(datagram) <= TAG_SIZE:
            return False
        return hmac.compare_digest(self.tag(datagram[:-TAG_SIZE]), datagram[-TAG_SIZE:])


@dataclass(frozen=True)
class Data:
    session: int
    chunk: int
    piece: int
    pieces: int
    frame_len: int
    seq: int
    payload: memoryview | bytes


@dataclass(frozen=True)
class Beacon:
    session: int
    seq: int
    rate: int  # bit/s
    sent: int  # data datagram bytes sent in this session so far
    chunks: int
    cursor: int
    piece_size: int
    state: int


@dataclass(frozen=True)
class Malformed:
    reason: str  # short and fixed, a counter's key: "short", "magic", "tag", ...


Packet = Data | Beacon | Malformed


def piece_count(frame_len: int, piece_size: int = PIECE_SIZE) -> int:
    return max(1, -(-frame_len // piece_size))


def decode(
    buf: bytes | bytearray | memoryview, key: SessionKey, piece_size: int = PIECE_SIZE
) -> Packet:
    """One received datagram → :class:`Data`, :class:`Beacon` or :class:`Malformed`.
    The tag is checked before any field is read past the header's magic and version:
    a datagram that fails it is ``Malformed("tag")`` whatever it says.  A data payload
    is a view into ``buf``: copy it before ``buf`` is reused."""
    view = memoryview(buf)
    if len(view) < _HEAD.size + TAG_SIZE:
        return Malformed("short")
    magic, version, kind, _flags, session = _HEAD.unpack_from(view)
    if magic != MAGIC:
        return Malformed("magic")
    if version != VERSION:
        return Malformed("version")
    if not key.verify(view):
        return Malformed("tag")
    body = view[:-TAG_SIZE]
    if kind == KIND_DATA:
        return _decode_data(body, session, piece_size)
    if kind == KIND_BEACON:
        if len(view) != BEACON_SIZE:
            return Malformed("beacon-length")
        seq, rate, sent, chunks, cursor, psize, state, _pad = _BEACON.unpack_from(body, _HEAD.size)
        if psize == 0 or psize > 65507 - HEADER_SIZE - TAG_SIZE or state > ENDING:
            return Malformed("beacon-field")
        return Beacon(session, seq, rate, sent, chunks, cursor, psize, state)
    return Malformed("kind")


def _decode_data(view: memoryview, session: int, piece_size: int) -> Packet:
    if len(view) < HEADER_SIZE:
        return Malformed("short")
    chunk, piece, pieces, frame_len, seq = _DATA.unpack_from(view, _HEAD.size)
    if frame_len == 0 or pieces != piece_count(frame_len, piece_size) or piece >= pieces:
        return Malformed("piece-range")
    payload = view[HEADER_SIZE:]
    want = piece_size if piece < pieces - 1 else frame_len - piece_size * (pieces - 1)
    if len(payload) != want:
        return Malformed("piece-length")
    return Data(session, chunk, piece, pieces, frame_len, seq, payload)


def data_header(
    session: int, chunk: int, piece: int, pieces: int, frame_len: int, seq: int = 0
) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, KIND_DATA, 0, session) + _DATA.pack(
        chunk, piece, pieces, frame_len, seq & 0xFFFFFFFF
    )


def seal(key: SessionKey, body: bytes | bytearray | memoryview) -> bytes:
    """``body`` with its tag appended: a datagram as it goes on the wire."""
    return bytes(body) + key.tag(body)


def encode_pieces(
    key: SessionKey,
    session: int,
    chunk: int,
    frame: bytes | memoryview,
    pieces: Iterable[int] | None = None,
    *,
    seq: int = 0,
    piece_size: int = PIECE_SIZE,
) -> Iterator[bytes]:
    """The datagrams of ``frame`` (all pieces, or only ``pieces``), in order, numbered
    from ``seq`` on."""
    total = piece_count(len(frame), piece_size)
    if total > MAX_PIECES:
        raise ValueError(f"a frame of {len(frame)} bytes needs more than {MAX_PIECES} pieces")
    view = memoryview(frame)
    for p in range(total) if pieces is None else sorted(pieces):
        if 0 <= p < total:
            body = (
                data_header(session, chunk, p, total, len(frame), seq)
                + view[p * piece_size : (p + 1) * piece_size]
            )
            seq += 1
            yield body + key.tag(body)


def encode_beacon(
    key: SessionKey,
    session: int,
    seq: int,
    rate: int,
    sent: int,
    chunks: int,
    cursor: int,
    state: int = ACTIVE,
    piece_size: int = PIECE_SIZE,
) -> bytes:
    body = _HEAD.pack(MAGIC, VERSION, KIND_BEACON, 0, session) + _BEACON.pack(
        seq & 0xFFFFFFFF, rate, sent, chunks, cursor, piece_size, state, 0
    )
    return body + key.tag(body)


# --------------------------------------------------------------------- the chunk table


def chunk_table(manifest: Manifest) -> list[str]:
    """The distinct data chunk names of ``manifest``, disks in order, chunks in disk
    order (first occurrence): the numbering both ends use for chunks."""
    seen: dict[str, None] = {}
    for disk in manifest.disks:
        for chunk in disk.chunks:
            if chunk.digest is not None and chunk.digest not in seen:
                seen[chunk.digest] = None
    return list(seen)


# --------------------------------------------------------------------- bitmaps


def encode_bitmap(indices: Iterable[int], count: int) -> str:
    """A set of chunk indices below ``count`` as base64 of a bitmap (bit i of byte i//8,
    least significant first): a 50 GB image of 4 MiB chunks is ~1.6 KB."""
    bits = bytearray(-(-count // 8))
    for i in indices:
        if not 0 <= i < count:
            raise ValueError(f"chunk index {i} is out of range 0..{count - 1}")
        bits[i >> 3] |= 1 << (i & 7)
    return base64.b64encode(bytes(bits)).decode("ascii")


def decode_bitmap(text: object, count: int) -> set[int]:
    """The inverse of :func:`encode_bitmap`; ``ValueError`` with the reason for anything
    else (not text, not base64, the wrong length, bits past ``count``)."""
    if not isinstance(text, str):
        raise ValueError("the bitmap must be a base64 string")
    try:
        bits = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"the bitmap is not base64 ({exc})") from exc
    if len(bits) != -(-count // 8):
        raise ValueError(f"the bitmap has {len(bits)} bytes; {count} chunks need {-(-count // 8)}")
    found = {
        byte_i * 8 + bit
        for byte_i, byte in enumerate(bits)
        if byte
        for bit in range(8)
        if byte >> bit & 1
    }
    if found and max(found) >= count:
        raise ValueError(f"the bitmap names chunks past the last one ({count - 1})")
    return found
