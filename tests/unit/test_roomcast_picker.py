"""Roomcast's scheduler: a pure function of what the seats need, table-tested."""

from __future__ import annotations

import pytest

from appliance.roomcast.picker import Pick, SeatNeeds, http_share, pick


def seat(*need: int, partial: dict[int, set[int]] | None = None, http: bool = False) -> SeatNeeds:
    return SeatNeeds(
        frozenset(need), {k: frozenset(v) for k, v in (partial or {}).items()}, http_only=http
    )


def first_pass(seats: list[SeatNeeds], chunks: int, expected: int = 0) -> list[int]:
    """The chunks the first pass sends, in order (nothing is received meanwhile)."""
    sent, cursor = [], 0
    while cursor < chunks:
        p = pick(seats, chunks, cursor, expected=expected, last_sent=dict.fromkeys(sent, 0.0))
        if p.chunk is None:
            break
        sent.append(p.chunk)
        cursor = p.cursor
    return sent


@pytest.mark.parametrize(
    ("seats", "expected", "sent"),
    [
        # Two seats needing everything: every chunk once, in disk order.
        ([seat(0, 1, 2, 3), seat(0, 1, 2, 3)], 0, [0, 1, 2, 3]),
        # Delta seats: only chunks two need go by multicast; 0 and 3 are singletons.
        ([seat(0, 1, 2), seat(1, 2, 3)], 0, [1, 2]),
        # One seat, two more still booting: it gets the pass (they will need it too).
        ([seat(0, 1, 2, 3)], 2, [0, 1, 2, 3]),
        # One seat alone, nobody expected: nothing by multicast.
        ([seat(0, 1, 2, 3)], 0, []),
        # An HTTP-only seat's needs do not count.
        ([seat(0, 1, 2), seat(0, 1, 2, http=True)], 0, []),
    ],
)
def test_first_pass_in_disk_order_over_what_two_or_more_need(
    seats: list[SeatNeeds], expected: int, sent: list[int]
) -> None:
    assert first_pass(seats, 4, expected) == sent


def test_repairs_come_before_new_chunks_and_are_the_union_of_what_seats_lost() -> None:
    seats = [seat(2, 3, partial={0: {5, 6}}), seat(2, 3, partial={0: {6, 7}, 1: {1}})]
    assert pick(seats, 4, 2) == Pick(0, 2, frozenset({5, 6, 7}))
    # Chunk 0's repair was just sent: chunk 1's comes next, then the pass goes on.
    assert pick(seats, 4, 2, last_repair={0: 10.0}, now=10.2) == Pick(1, 2, frozenset({1}))
    assert pick(seats, 4, 2, last_repair={0: 10.0, 1: 10.1}, now=10.2) == Pick(2, 3)
    # Half a second later chunk 0's repair may go again (the seats still ask for it).
    assert pick(seats, 4, 3, last_repair={0: 10.0, 1: 10.1}, now=10.6).chunk == 0


def test_after_the_first_pass_the_most_wanted_first_with_a_holdoff() -> None:
    seats = [seat(1, 3), seat(3), seat(1, 3), seat(2, 0)]
    assert pick(seats, 4, 4, now=100.0) == Pick(3, 4)  # three seats need chunk 3
    assert pick(seats, 4, 4, last_sent={3: 99.0}, now=100.0) == Pick(1, 4)
    # Everything wanted was sent within the holdoff: idle until the reports catch up.
    assert pick(seats, 4, 4, last_sent={3: 99.0, 1: 98.5}, now=100.0) == Pick(None, 4)
    assert pick(seats, 4, 4, last_sent={3: 96.0, 1: 98.5}, now=100.0) == Pick(3, 4)


def test_late_joiner_needs_no_special_case() -> None:
    early = [seat(*range(5, 10)), seat(*range(5, 10))]  # they got 0-4 in the pass so far
    late = seat(*range(10))
    seats = [*early, late]
    # The pass goes on from where it is: chunks 5-9, which all three need.
    assert first_pass(seats, 10) == [5, 6, 7, 8, 9]  # 0-4: only the late one needs them
    assert pick(seats, 10, 5) == Pick(5, 6)
    # What it missed, only it needs: HTTP now, behind the cursor.
    assert http_share(late, seats, 5) == frozenset(range(5))
    assert http_share(early[0], seats, 5) == frozenset()


@pytest.mark.parametrize(
    ("me", "others", "cursor", "expected", "share"),
    [
        # Singletons behind the cursor go to HTTP, ahead of it too when nobody is expected.
        (seat(0, 1, 2, 3), [seat(2)], 2, 0, {0, 1, 3}),
        # Ahead of the cursor with seats still expected: the pass will carry them.
        (seat(0, 1, 2, 3), [seat(2)], 2, 1, {0, 1}),
        # A chunk two seats need stays multicast, even behind the cursor (repair pass).
        (seat(0, 1), [seat(0)], 2, 0, {1}),
        # A slow seat handed to HTTP takes everything, partial chunks included.
        (seat(0, 1, partial={2: {1}}, http=True), [seat(0, 1, 2)], 0, 3, {0, 1, 2}),
        # Pieces lost from a chunk held in part are repaired by multicast, not HTTP.
        (seat(1, partial={0: {3}}), [], 4, 0, {1}),
    ],
)
def test_http_share(
    me: SeatNeeds, others: list[SeatNeeds], cursor: int, expected: int, share: set[int]
) -> None:
    assert http_share(me, [me, *others], cursor, expected=expected) == share


def test_nothing_to_send_when_every_seat_is_done() -> None:
    assert pick([seat(), seat()], 8, 0) == Pick(None, 8)
    # No seat at all (or only HTTP-only ones): idle, and the first pass stays where it is.
    assert pick([], 8, 3, expected=5) == Pick(None, 3)
    assert pick([seat(0, 1, http=True)], 8, 0, expected=2) == Pick(None, 0)


def test_the_first_seat_finds_the_pass_not_yet_begun() -> None:
    """The sender starts a moment before the session's first seat has joined.  Found in
    CI: the pass ran through all 24 chunks with nobody listening, so the first seat found
    every chunk behind the cursor, needed by it alone, and took them all by HTTP."""
    assert pick([], 24, 0, expected=8) == Pick(None, 0)
    first = seat(*range(24))
    assert http_share(first, [first], 0, expected=7) == frozenset()
    assert pick([first], 24, 0, expected=7) == Pick(0, 1)


def test_transport_multicast_sends_even_what_one_seat_alone_needs() -> None:
    alone = [seat(0, 1, 2)]
    assert pick(alone, 3, 0, min_demand=1) == Pick(0, 1)
    assert http_share(alone[0], alone, 3, min_demand=1) == frozenset()
    assert http_share(alone[0], alone, 3) == frozenset({0, 1, 2})
