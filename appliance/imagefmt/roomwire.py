"""Roomcast's datagrams: bytes in, frozen dataclasses out, no sockets (the h11 way).

Shared by the appliance's sender and the receiver in the boot environment, so stdlib
only.  Two kinds of datagram travel on a session's multicast group:

* **data** — one piece of one chunk's stored zstd frame.  The chunk is named by its
  index in the session's *chunk table* (:func:`chunk_table`: the distinct chunk names of
  the manifest in disk order), never by an offset: where a chunk goes on the disk is
  what the authentic manifest says, and it is written only after its SHA-256 matches.
* **beacon** — several times a second: the session, a sequence number, the rate and
  where the sender is, so a seat knows multicast reaches it before any data does.

Header (network byte order), 12 bytes::

    magic "SLRC" | version u8 | kind u8 | flags u16 | session u32

data then carries ``chunk u32 | piece u16 | pieces u16 | frame_len u32`` (12 bytes) and
the piece's bytes: piece ``p`` holds ``frame[p*piece_size : (p+1)*piece_size]``, every
piece but the last exactly ``piece_size`` long.  A beacon carries ``seq u32 | rate u64
(bit/s) | sent u64 | chunks u32 | cursor u32 | piece_size u16 | state u8 | pad u8`` (32
bytes); ``sent`` counts the data bytes sent so far, so a seat can tell which share of
them reached it (its *catch ratio*).

:func:`decode` never raises: anything that is not a well-formed datagram of this
version comes back as :class:`Malformed` with the reason, for the receiver to count.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from appliance.imagefmt.manifest import Manifest

MAGIC = b"SLRC"
VERSION = 1
KIND_DATA = 1
KIND_BEACON = 2
_HEAD = struct.Struct("!4sBBHI")
_DATA = struct.Struct("!IHHI")
_BEACON = struct.Struct("!IQQIIHBB")
HEADER_SIZE = _HEAD.size + _DATA.size  # 24 bytes before a data piece
# MTU 1500 - IPv4 (20) - UDP (8) = 1472 bytes of UDP payload; 4 more are left for a
# VLAN tag on links that count it against the MTU.  Never fragment.
MAX_DATAGRAM = 1468
PIECE_SIZE = MAX_DATAGRAM - HEADER_SIZE  # 1444 bytes of frame per datagram
MAX_PIECES = 0xFFFF
# Beacon states.
ACTIVE = 0
IDLE = 1  # nothing to send by multicast just now (seats take their own chunks by HTTP)
ENDING = 2  # the session is closing: finish by HTTP


@dataclass(frozen=True)
class Data:
    session: int
    chunk: int
    piece: int
    pieces: int
    frame_len: int
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
    reason: str  # short and fixed, a counter's key: "short", "magic", "version", ...


Packet = Data | Beacon | Malformed


def piece_count(frame_len: int, piece_size: int = PIECE_SIZE) -> int:
    return max(1, -(-frame_len // piece_size))


def decode(buf: bytes | bytearray | memoryview, piece_size: int = PIECE_SIZE) -> Packet:
    """One received datagram → :class:`Data`, :class:`Beacon` or :class:`Malformed`.
    A data payload is a view into ``buf``: copy it before ``buf`` is reused."""
    view = memoryview(buf)
    if len(view) < _HEAD.size:
        return Malformed("short")
    magic, version, kind, _flags, session = _HEAD.unpack_from(view)
    if magic != MAGIC:
        return Malformed("magic")
    if version != VERSION:
        return Malformed("version")
    if kind == KIND_DATA:
        return _decode_data(view, session, piece_size)
    if kind == KIND_BEACON:
        if len(view) != _HEAD.size + _BEACON.size:
            return Malformed("beacon-length")
        seq, rate, sent, chunks, cursor, psize, state, _pad = _BEACON.unpack_from(view, _HEAD.size)
        if psize == 0 or psize > 65507 - HEADER_SIZE or state > ENDING:
            return Malformed("beacon-field")
        return Beacon(session, seq, rate, sent, chunks, cursor, psize, state)
    return Malformed("kind")


def _decode_data(view: memoryview, session: int, piece_size: int) -> Packet:
    if len(view) < HEADER_SIZE:
        return Malformed("short")
    chunk, piece, pieces, frame_len = _DATA.unpack_from(view, _HEAD.size)
    if frame_len == 0 or pieces != piece_count(frame_len, piece_size) or piece >= pieces:
        return Malformed("piece-range")
    payload = view[HEADER_SIZE:]
    want = piece_size if piece < pieces - 1 else frame_len - piece_size * (pieces - 1)
    if len(payload) != want:
        return Malformed("piece-length")
    return Data(session, chunk, piece, pieces, frame_len, payload)


def data_header(session: int, chunk: int, piece: int, pieces: int, frame_len: int) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, KIND_DATA, 0, session) + _DATA.pack(
        chunk, piece, pieces, frame_len
    )


def encode_pieces(
    session: int,
    chunk: int,
    frame: bytes | memoryview,
    pieces: Iterable[int] | None = None,
    piece_size: int = PIECE_SIZE,
) -> Iterator[bytes]:
    """The datagrams of ``frame`` (all pieces, or only ``pieces``), in order."""
    total = piece_count(len(frame), piece_size)
    if total > MAX_PIECES:
        raise ValueError(f"a frame of {len(frame)} bytes needs more than {MAX_PIECES} pieces")
    view = memoryview(frame)
    for p in range(total) if pieces is None else sorted(pieces):
        if 0 <= p < total:
            head = data_header(session, chunk, p, total, len(frame))
            yield head + view[p * piece_size : (p + 1) * piece_size]


def encode_beacon(
    session: int,
    seq: int,
    rate: int,
    sent: int,
    chunks: int,
    cursor: int,
    state: int = ACTIVE,
    piece_size: int = PIECE_SIZE,
) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, KIND_BEACON, 0, session) + _BEACON.pack(
        seq & 0xFFFFFFFF, rate, sent, chunks, cursor, piece_size, state, 0
    )


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
