"""Roomcast's datagram codec: pure, round-trips, and never raises on garbage."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imagefmt import roomwire
from appliance.imagefmt.manifest import Chunk, Disk, Manifest
from appliance.imagefmt.roomwire import Beacon, Data, Malformed, decode

D1, D2 = "a" * 64, "b" * 64


def test_data_round_trip_and_the_datagram_never_fragments() -> None:
    frame = random.Random(1).randbytes(10_000)
    grams = list(roomwire.encode_pieces(0xDEADBEEF, 7, frame))
    assert len(grams) == roomwire.piece_count(len(frame)) == 7
    assert all(len(g) <= 1468 for g in grams)
    assert len(grams[0]) == 1468  # 24 bytes of header, 1444 of frame
    got = bytearray(len(frame))
    for p, g in enumerate(grams):
        d = decode(g)
        assert isinstance(d, Data)
        assert (d.session, d.chunk, d.piece, d.pieces, d.frame_len) == (0xDEADBEEF, 7, p, 7, 10_000)
        got[p * 1444 : p * 1444 + len(d.payload)] = d.payload
    assert bytes(got) == frame


def test_only_the_asked_pieces_are_encoded() -> None:
    grams = list(roomwire.encode_pieces(1, 0, bytes(5000), pieces=[3, 0, 99]))
    assert [decode(g).piece for g in grams] == [0, 3]  # type: ignore[union-attr]


def test_beacon_round_trip() -> None:
    b = decode(roomwire.encode_beacon(5, 9, 90_000_000, 123456, 40, 3, roomwire.IDLE))
    assert b == Beacon(5, 9, 90_000_000, 123456, 40, 3, 1444, roomwire.IDLE)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "short"),
        (b"SLRC\x01", "short"),
        (b"XXXX" + bytes(20), "magic"),
        (b"SLRC\x02\x01" + bytes(18), "version"),
        (b"SLRC\x01\x07" + bytes(18), "kind"),
        (roomwire.data_header(1, 0, 0, 1, 10) + b"short", "piece-length"),
        (roomwire.data_header(1, 0, 2, 2, 2000) + bytes(556), "piece-range"),
        (roomwire.data_header(1, 0, 0, 5, 2000) + bytes(1444), "piece-range"),
        (roomwire.data_header(1, 0, 0, 1, 0), "piece-range"),
        (roomwire.encode_beacon(1, 1, 1, 0, 1, 1)[:-1], "beacon-length"),
        (roomwire.encode_beacon(1, 1, 1, 0, 1, 1, 9), "beacon-field"),
    ],
)
def test_malformed_datagrams_are_named(datagram: bytes, reason: str) -> None:
    assert decode(datagram) == Malformed(reason)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1600))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert isinstance(decode(data), Data | Beacon | Malformed)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 1467), st.integers(0, 255), st.integers(0, 1600))
def test_mutated_datagrams_never_raise_nor_yield_a_piece_of_the_wrong_size(
    at: int, value: int, cut: int
) -> None:
    good = next(roomwire.encode_pieces(3, 1, bytes(range(256)) * 20))
    bad = bytearray(good)
    bad[at] = value
    got = decode(bytes(bad[:cut]))
    if isinstance(got, Data):
        expect = 1444 if got.piece < got.pieces - 1 else got.frame_len - 1444 * (got.pieces - 1)
        assert len(got.payload) == expect
        assert got.piece < got.pieces == roomwire.piece_count(got.frame_len)


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
