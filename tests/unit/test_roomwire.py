"""Roomcast's datagram codec: pure, round-trips, and never raises on garbage."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.formats import roomwire
from appliance.formats.manifest import Chunk, Disk, Manifest
from appliance.formats.roomwire import Beacon, Data, Malformed, decode

D1, D2 = "a" * 64, "b" * 64
KEY = roomwire.SessionKey(bytes(range(32)))
OTHER = roomwire.SessionKey(bytes(range(1, 33)))


def test_data_round_trip_and_the_datagram_never_fragments() -> None:
    frame = random.Random(1).randbytes(10_000)
    grams = list(roomwire.encode_pieces(KEY, 0xDEADBEEF, 7, frame, seq=41))
    assert len(grams) == roomwire.piece_count(len(frame)) == 8
    assert all(len(g) <= 1468 for g in grams)
    assert len(grams[0]) == 1468  # 28 bytes of header, 1424 of frame, a 16-byte tag
    got = bytearray(len(frame))
    for p, g in enumerate(grams):
        d = decode(g, KEY)
        assert isinstance(d, Data)
        assert (d.session, d.chunk, d.piece, d.pieces, d.frame_len, d.seq) == (
            0xDEADBEEF, 7, p, 8, 10_000, 41 + p,
        )  # fmt: skip
        got[p * 1424 : p * 1424 + len(d.payload)] = d.payload
    assert bytes(got) == frame


def test_the_tag_is_hmac_sha256_truncated_to_16_bytes() -> None:
    body = b"SLRC" + bytes(200)
    assert KEY.tag(body) == hmac.new(bytes(range(32)), body, hashlib.sha256).digest()[:16]
    assert roomwire.seal(KEY, body) == body + KEY.tag(body)
    with pytest.raises(ValueError):
        roomwire.SessionKey(bytes(16))
    with pytest.raises(ValueError):
        roomwire.SessionKey.from_hex("zz")
    assert roomwire.SessionKey.from_hex("00" * 32).tag(b"x") != KEY.tag(b"x")


def test_only_the_asked_pieces_are_encoded() -> None:
    grams = list(roomwire.encode_pieces(KEY, 1, 0, bytes(5000), pieces=[3, 0, 99]))
    assert [decode(g, KEY).piece for g in grams] == [0, 3]  # type: ignore[union-attr]


def test_beacon_round_trip() -> None:
    b = decode(roomwire.encode_beacon(KEY, 5, 9, 90_000_000, 123456, 40, 3, roomwire.IDLE), KEY)
    assert b == Beacon(5, 9, 90_000_000, 123456, 40, 3, 1424, roomwire.IDLE)


def test_another_sessions_key_verifies_nothing() -> None:
    beacon = roomwire.encode_beacon(OTHER, 5, 9, 1, 1, 4, 0, roomwire.ENDING)
    data = next(roomwire.encode_pieces(OTHER, 5, 0, bytes(100)))
    assert decode(beacon, KEY) == Malformed("tag")
    assert decode(data, KEY) == Malformed("tag")


def _sealed(body: bytes) -> bytes:
    return roomwire.seal(KEY, body)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "short"),
        (b"SLRC\x02" + bytes(20), "short"),
        (b"XXXX" + bytes(40), "magic"),
        (b"SLRC\x01\x01" + bytes(40), "version"),
        (b"SLRC\x02\x01" + bytes(40), "tag"),
        (_sealed(b"SLRC\x02\x07" + bytes(18)), "kind"),
        (_sealed(roomwire.data_header(1, 0, 0, 1, 10) + b"short"), "piece-length"),
        (_sealed(roomwire.data_header(1, 0, 2, 2, 2000) + bytes(576)), "piece-range"),
        (_sealed(roomwire.data_header(1, 0, 0, 5, 2000) + bytes(1424)), "piece-range"),
        (_sealed(roomwire.data_header(1, 0, 0, 1, 0)), "piece-range"),
        (_sealed(roomwire.encode_beacon(KEY, 1, 1, 1, 0, 1, 1)[:-17]), "beacon-length"),
        (roomwire.encode_beacon(KEY, 1, 1, 1, 0, 1, 1, 9), "beacon-field"),
    ],
)
def test_malformed_datagrams_are_named(datagram: bytes, reason: str) -> None:
    assert decode(datagram, KEY) == Malformed(reason)


def test_any_single_bit_flipped_never_verifies() -> None:
    """Every bit of a data datagram and of a beacon (its state byte included: a forged
    "ending" or "idle"), flipped alone, makes a datagram that is refused."""
    grams = [
        next(roomwire.encode_pieces(KEY, 3, 1, bytes(range(256)) * 20, seq=7)),
        roomwire.encode_beacon(KEY, 3, 9, 45_000_000, 10**6, 40, 2, roomwire.ACTIVE),
    ]
    for good in grams:
        assert not isinstance(decode(good, KEY), Malformed)
        for bit in range(len(good) * 8):
            bad = bytearray(good)
            bad[bit // 8] ^= 1 << (bit % 8)
            assert isinstance(decode(bytes(bad), KEY), Malformed), bit


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1600))
def test_random_bytes_never_raise_nor_verify(data: bytes) -> None:
    assert isinstance(decode(data, KEY), Malformed)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 1467), st.integers(0, 255), st.integers(0, 1600))
def test_mutated_datagrams_never_raise_and_verify_only_unchanged(
    at: int, value: int, cut: int
) -> None:
    good = next(roomwire.encode_pieces(KEY, 3, 1, bytes(range(256)) * 20))
    bad = bytearray(good)
    bad[at] = value
    got = decode(bytes(bad[:cut]), KEY)
    if not isinstance(got, Malformed):
        assert bytes(bad[:cut]) == good
        assert isinstance(got, Data) and len(got.payload) == 1424


def test_chunk_table_is_distinct_names_in_disk_order() -> None:
    def disk(i: int, chunks: list[Chunk]) -> Disk:
        return Disk(index=i, size=len(chunks) * 65536, chunk_size=65536, chunks=tuple(chunks))

    m = Manifest(
        image="x",
        version="20261201T000000Z",
        created="2026-12-01T00:00:00Z",
        disks=(
            disk(0, [Chunk("hash", D2), Chunk("zero"), Chunk("hash", D1), Chunk("hash", D2)]),
            disk(1, [Chunk("unused"), Chunk("hash", D1)]),
        ),
    )
    assert roomwire.chunk_table(m) == [D2, D1]


def test_bitmaps_round_trip_and_refuse_bad_input() -> None:
    text = roomwire.encode_bitmap({0, 5, 11}, 12)
    assert roomwire.decode_bitmap(text, 12) == {0, 5, 11}
    assert roomwire.decode_bitmap(roomwire.encode_bitmap([], 12_000), 12_000) == set()
    assert len(roomwire.encode_bitmap(range(12_000), 12_000)) == 2000  # 1500 bytes, base64
    for bad, count in [(5, 12), ("!!", 12), ("AAAA", 12), ("/w==", 3), (None, 1)]:
        with pytest.raises(ValueError):
            roomwire.decode_bitmap(bad, count)
    with pytest.raises(ValueError):
        roomwire.encode_bitmap({12}, 12)
