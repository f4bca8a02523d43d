"""The seat's roomcast state, sans I/O: a datagram trace in (datagram, source, time),
the frames, reports and fallback reasons out — the way test_roomcast_session.py tests
the appliance's side.  No socket, no clock, no thread."""

from __future__ import annotations

import random

from appliance.formats import roomwire
from bootimage.client.roomseat import Chunks, Listener, Placement, Stats, fallback_reason

SID = 0x5EA7
KEY = roomwire.SessionKey(bytes(range(32)))
FORGER = roomwire.SessionKey(bytes(32))
APPLIANCE, EVIL = "10.83.0.1", "10.83.0.200"
FRAMES = [random.Random(k).randbytes(5000) for k in range(4)]  # 4 pieces each: 3 x 1424 + 728


class Sender:
    """The appliance's side of the trace: numbered data datagrams and beacons."""

    def __init__(self, key: roomwire.SessionKey = KEY) -> None:
        self.key, self.seq, self.beacon_seq, self.sent = key, 0, 0, 0

    def pieces(self, k: int, pieces: list[int] | None = None) -> list[bytes]:
        grams = list(roomwire.encode_pieces(self.key, SID, k, FRAMES[k], pieces, seq=self.seq))
        self.seq += len(grams)
        self.sent += sum(len(g) for g in grams)
        return grams

    def beacon(self, state: int = roomwire.ACTIVE) -> bytes:
        self.beacon_seq += 1
        return roomwire.encode_beacon(
            self.key, SID, self.beacon_seq, 45_000_000, self.sent, 4, 0, state
        )


def seat(chunks: int = 4, max_partial: int = 8) -> tuple[Listener, Chunks, Stats]:
    c = Chunks({k: [Placement(0, k * 65536, 65536)] for k in range(chunks)}, max_partial)
    stats = Stats()
    return Listener(SID, KEY, c, stats), c, stats


def feed(rx: Listener, grams: list[bytes], now: float, source: str = APPLIANCE) -> list[int]:
    done = []
    for g in grams:
        done += [k for k, frame in rx.feed(memoryview(g), source, now)]
    return done


def test_a_whole_chunk_comes_back_claimed_with_its_frame() -> None:
    rx, c, _ = seat()
    tx = Sender()
    out: list[tuple[int, bytearray]] = []
    for g in tx.pieces(1):
        out += rx.feed(memoryview(g), APPLIANCE, 1.0)
    assert [(k, bytes(f)) for k, f in out] == [(1, FRAMES[1])]
    assert not c.claim(1)  # claimed for its write already: HTTP cannot take it too
    c.finish(1, True, 2.0)
    assert c.remaining() == [0, 2, 3] and c.progress_at == 2.0


def test_a_piece_lost_in_a_send_is_asked_for_when_the_next_chunk_starts() -> None:
    rx, c, _ = seat()
    tx = Sender()
    grams = tx.pieces(0)
    assert feed(rx, grams[:2] + grams[3:], 1.0) == []  # piece 2 lost: piece 3 came after it
    assert c.report(1.05, repairs=True)[1:] == ({0: [2]}, 1)
    rx2, c2, _ = seat()
    assert feed(rx2, grams[:2], 1.0) == []  # the last two lost: nothing says so yet
    need, partial, new = c2.report(1.05, repairs=True)
    assert partial == {} and new == 0 and 0 in need
    assert not c2.wake.is_set()
    feed(rx2, tx.pieces(1)[:1], 1.1)  # the send of chunk 0 is over
    assert c2.wake.is_set()
    need, partial, new = c2.report(1.1, repairs=True)
    assert partial == {0: [2, 3]} and new == 2 and 0 not in need
    assert 1 not in partial  # chunk 1 is still on its way


def test_a_repair_that_is_lost_again_is_asked_for_again_at_its_end() -> None:
    """The case of b57d9ba: after a repair send that left the chunk short, the seat asks
    again at once (the appliance repairs only on a report made after that send)."""
    rx, c, _ = seat()
    tx = Sender()
    grams = tx.pieces(0)
    feed(rx, grams[:1] + grams[3:], 1.0)
    feed(rx, tx.pieces(1), 1.1)
    assert c.report(1.1, repairs=True)[1:] == ({0: [1, 2]}, 2)
    c.wake.clear()
    repair = tx.pieces(0, [1, 2])
    feed(rx, repair[:1], 1.5)  # piece 1 arrives, piece 2 is lost again
    assert not c.wake.is_set()
    feed(rx, tx.pieces(2)[:1], 1.6)  # the repair's send is over
    assert c.wake.is_set()
    assert c.report(1.6, repairs=True)[1:] == ({0: [2]}, 0)  # named again, not a new loss
    assert feed(rx, tx.pieces(0, [2]), 1.7) == [0]  # the next repair arrives: complete


def test_an_idle_beacon_after_sending_makes_every_gap_a_loss() -> None:
    rx, c, _ = seat()
    tx = Sender()
    feed(rx, [tx.beacon()], 0.9)
    feed(rx, tx.pieces(3)[:3], 1.0)
    assert c.report(1.0, repairs=True)[1] == {}  # the last piece may still come
    feed(rx, [tx.beacon(roomwire.IDLE)], 1.05)
    assert c.report(1.05, repairs=True)[1] == {3: [3]}


def test_without_repairs_a_partial_chunk_is_needed_whole() -> None:
    rx, c, _ = seat()
    tx = Sender()
    grams = tx.pieces(0)
    feed(rx, grams[:1] + grams[2:], 1.0)
    feed(rx, tx.pieces(1)[:1], 1.1)
    need, partial, _ = c.report(1.1, repairs=False)
    assert partial == {} and 0 in need


def test_a_stale_partial_chunk_is_dropped_and_needed_whole() -> None:
    rx, c, _stats = seat()
    tx = Sender()
    feed(rx, tx.pieces(2)[:3], 1.0)
    need, partial, _ = c.report(5.1, repairs=True)
    assert 2 in need and partial == {} and c.dropped == 3
    assert c.claim(2)


def test_held_partials_are_bounded_the_oldest_goes() -> None:
    rx, c, _ = seat(max_partial=2)
    tx = Sender()
    feed(rx, tx.pieces(0)[:1], 1.0)
    feed(rx, tx.pieces(1)[:1], 1.1)
    feed(rx, tx.pieces(2)[:1], 1.2)
    assert sorted(c.partial) == [1, 2] and c.dropped == 1


def test_forged_datagrams_are_counted_by_source_and_never_believed() -> None:
    rx, c, stats = seat()
    tx, evil = Sender(), Sender(FORGER)
    feed(rx, [tx.beacon()], 1.0)
    rng = random.Random(3)
    junk = [rng.randbytes(rng.randrange(0, 1500)) for _ in range(50)]
    good = tx.pieces(0)
    flipped = bytearray(good[0])
    flipped[40] ^= 0x10  # a bit of the payload
    header = bytearray(good[1])
    header[17] ^= 0x01  # a bit of the piece number
    forged = [
        *junk,
        *evil.pieces(1),  # real headers, junk payloads, another key
        bytes(flipped),
        bytes(header),
        evil.beacon(roomwire.ENDING),
    ]
    assert feed(rx, forged, 1.1, source=EVIL) == []
    assert not rx.ending and rx.rate == 45_000_000
    assert c.partial == {} and c.remaining() == [0, 1, 2, 3]
    assert stats.forged == len(forged) and stats.forgers == {EVIL: len(forged)}
    assert stats.sources() == [EVIL]
    assert rx.got_bytes == 0  # none of it counts as caught
    assert feed(rx, good, 1.2) == [0]  # the authentic chunk is whole, untouched by them


def test_a_replayed_beacon_cannot_end_the_session_nor_go_back() -> None:
    rx, _c, stats = seat()
    tx = Sender()
    first = tx.beacon()
    feed(rx, [first, tx.beacon(), tx.beacon()], 1.0)
    feed(rx, [first, first], 1.1, source=EVIL)  # replays of an older beacon
    assert stats.dropped_datagrams["replayed-beacon"] == 2 and stats.forged == 2
    assert rx.beacon_seq == 3 and rx.last_beacon == 1.0
    old = Sender(FORGER)  # the end of an earlier session, replayed: another key
    old.beacon_seq = 10
    feed(rx, [old.beacon(roomwire.ENDING)], 1.2, source=EVIL)
    assert not rx.ending and stats.dropped_datagrams["tag"] == 1 and stats.forged == 3
    feed(rx, [tx.beacon(roomwire.ENDING)], 1.3)  # the appliance's own, newer: believed
    assert rx.ending and fallback_reason(rx, 0.0, 1.3, None) == "the appliance ended the session"


def test_a_replayed_data_piece_still_serves_but_drives_nothing() -> None:
    rx, c, stats = seat()
    tx = Sender()
    old = tx.pieces(0)
    feed(rx, old[:2], 1.0)
    c.report(1.0, repairs=True)
    current = tx.pieces(1)
    feed(rx, current[:1], 1.1)
    c.wake.clear()
    got = rx.got_bytes
    # A replay of chunk 0's third piece, between pieces of chunk 1: the piece is kept...
    feed(rx, old[2:3], 1.15, source=EVIL)
    assert c.partial[0].have[2] == 1
    # ...but it neither counts as caught nor makes chunk 1's send look over.
    assert rx.got_bytes == got and not c.partial[1].passed
    assert stats.dropped_datagrams["replayed-data"] == 1


def test_junk_at_any_rate_leaves_the_fallback_rules_alone() -> None:
    rx, c, stats = seat(chunks=400)
    tx = Sender()
    rng = random.Random(9)
    t = 0.0
    for step in range(100):  # 10 s: authentic data and beacons, and junk 10 x as fast
        t = step * 0.1
        k = step % 4
        frames = tx.pieces(k)
        feed(rx, [*frames, tx.beacon()], t)
        feed(rx, [rng.randbytes(1468) for _ in range(40)], t, source=EVIL)
        c.progress_at = t
    catch = rx.catch(5.0, t)
    assert catch is not None and catch[0] == 1.0
    assert fallback_reason(rx, 0.0, t, c.progress_at) == ""
    assert stats.forged == 4000


def test_when_authentic_data_stops_the_seat_says_the_group_is_hostile() -> None:
    rx, _c, _stats = seat()
    tx = Sender()
    feed(rx, [tx.beacon()], 1.0)
    feed(rx, [b"\x00" * 100] * 7, 2.0, source=EVIL)
    assert fallback_reason(rx, 0.0, 5.9, None) == ""
    assert fallback_reason(rx, 0.0, 6.0, None) == (
        f"forged datagrams on the group: 7 dropped, from {EVIL}; authentic data stopped for 5 s"
    )


def test_no_authentic_beacon_after_the_join() -> None:
    rx, _c, _ = seat()
    assert fallback_reason(rx, 10.0, 12.9, None) == ""
    assert fallback_reason(rx, 10.0, 13.0, None).startswith(
        "no beacon within 3 s of joining (multicast is not reaching this seat"
    )
    feed(rx, [roomwire.encode_beacon(FORGER, SID, 1, 1, 0, 4, 0)], 13.1, source=EVIL)
    assert fallback_reason(rx, 10.0, 13.2, None) == (
        "no authentic beacon within 3 s of joining (forged datagrams on the group: 1 dropped,"
        " from 10.83.0.200)"
    )


def test_a_seat_that_catches_too_little_goes_http_only() -> None:
    rx, _c, _ = seat(chunks=400)
    tx = Sender()
    t = 0.0
    for step in range(61):  # 6 s: each send of 4 chunks, only the first reaches the seat
        t = step * 0.1
        grams = [g for k in range(4) for g in tx.pieces(k)]
        feed(rx, [*grams[:4], tx.beacon()], t)
    why = fallback_reason(rx, 0.0, t, t)
    assert why.startswith("it caught 25% of the multicast for 5 s"), why
