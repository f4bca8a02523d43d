"""A room session's control plane, pure: joins, reports and the HTTP share a report's
answer names, and what the status file says about it (docs/roomcast.md)."""

from __future__ import annotations

from appliance.roomcast.session import RoomSession


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _session(clock: Clock, expected: frozenset[int]) -> RoomSession:
    return RoomSession(
        7, "lab", "v1", [f"{i:064x}" for i in range(4)], group="239.1.1.1", port=5000,
        rate=20_000_000, expected=lambda: expected, clock=clock,
    )  # fmt: skip


def test_a_seat_alone_takes_what_went_by_before_it_listened_by_http() -> None:
    clock = Clock()
    s = _session(clock, frozenset({1, 2}))
    s.join(1, "pc1", "10.0.0.1", {0, 1, 2, 3})
    # Another seat is due: the first pass multicasts even what one seat needs.
    assert s.next_send().chunk == 0
    assert s.next_send().chunk == 1
    clock.now += 0.5
    # Seat 1 caught neither (its membership was not yet on the switch): by HTTP, since
    # nobody else needs them whole; chunks ahead of the pass stay for multicast.
    assert s.report(1, {0, 1, 2, 3}, {}) == {0, 1}
    clock.now += 0.5
    s.join(2, "pc2", "10.0.0.2", {0, 1, 2, 3})
    assert s.report(1, {0, 1, 2, 3}, {}) == frozenset()  # two seats need each: multicast
    seat = next(x for x in s.status()["seats"] if x["job"] == 1)
    assert seat["handed_http"] == 2
    assert seat["first_handed"] == {
        "after": 0.5, "cursor": 2, "expected": 1, "seats": 1, "chunks": 2,
    }  # fmt: skip
    other = next(x for x in s.status()["seats"] if x["job"] == 2)
    assert other["handed_http"] == 0 and other["first_handed"] is None


def test_with_nobody_else_coming_a_lone_seat_takes_everything_by_http() -> None:
    clock = Clock()
    s = _session(clock, frozenset({1}))
    s.join(1, "pc1", "10.0.0.1", {0, 1, 2, 3})
    assert s.report(1, {0, 1, 2, 3}, {}) == {0, 1, 2, 3}
    assert s.status()["seats"][0]["first_handed"] == {
        "after": 0.0, "cursor": 0, "expected": 0, "seats": 1, "chunks": 4,
    }  # fmt: skip


def test_lost_pieces_reported_before_the_seat_saw_their_repair_go_out_are_not_sent_again() -> None:
    clock = Clock()
    s = _session(clock, frozenset())
    s.join(1, "pc1", "10.0.0.1", {0, 1, 2, 3})
    s.join(2, "pc2", "10.0.0.2", {0, 1, 2, 3})
    assert s.next_send().chunk == 0  # the first pass: chunk 0 whole
    s.count_sent(10_000)
    s.sent_out(0)  # its last datagram is out at counter 10000
    assert s.next_send().chunk == 1
    # Seat 1 lost pieces 3 and 4 of chunk 0: the repair goes out ...
    s.report(1, {1, 2, 3}, {0: frozenset({3, 4})}, seen=10_000)
    pick = s.next_send()
    assert (pick.chunk, pick.pieces) == (0, frozenset({3, 4}))
    s.count_sent(3_000)
    s.sent_out(0)  # ... and is out at 13000
    clock.now += 1.0  # the repair holdoff (0.5 s) is over
    # A report made before the seat read past the repair still names them: not asked again.
    s.report(1, {1, 2, 3}, {0: frozenset({3, 4})}, seen=12_000)
    assert s.next_send().pieces is None
    assert s.status()["stale_repairs"] == 1
    # Once it has read past the repair's end, what it still lacks is lost for real.
    s.report(1, {1, 2, 3}, {0: frozenset({4})}, seen=13_000)
    pick = s.next_send()
    assert (pick.chunk, pick.pieces) == (0, frozenset({4}))
    # A seat that does not say what it has seen (an older client) is taken at its word
    # (with seat 1's piece 4, its repair not yet marked out).
    clock.now += 1.0
    s.report(2, {1, 2, 3}, {0: frozenset({9})})
    pick = s.next_send()
    assert (pick.chunk, pick.pieces) == (0, frozenset({4, 9}))


def test_a_repair_is_not_sent_again_on_a_report_older_than_the_repair() -> None:
    clock = Clock()
    s = _session(clock, frozenset())
    s.join(1, "pc1", "10.0.0.1", {0, 1, 2, 3})
    s.join(2, "pc2", "10.0.0.2", {0, 1, 2, 3})
    assert s.next_send().chunk == 0
    s.count_sent(10_000)
    s.sent_out(0)
    assert s.next_send().chunk == 1
    s.report(1, {1, 2, 3}, {0: frozenset({3, 4})}, seen=10_000)
    pick = s.next_send()
    assert (pick.chunk, pick.pieces) == (0, frozenset({3, 4}))
    s.count_sent(3_000)
    s.sent_out(0)  # the repair is out at 13000
    clock.now += 1.0  # past the repair holdoff, and seat 1 has not reported since
    # Its latest report still names pieces 3 and 4, but it was made before the repair:
    # the next send is the first pass's chunk 2, not the same repair again.
    pick = s.next_send()
    assert (pick.chunk, pick.pieces) == (2, None)
    # Seat 1's next report, made after it read past the repair, says 4 is still lost.
    s.report(1, {1, 2, 3}, {0: frozenset({4})}, seen=13_500)
    pick = s.next_send()
    assert (pick.chunk, pick.pieces) == (0, frozenset({4}))
    # A chunk the seat holds in part stays its own to fetch when it goes HTTP-only.
    s.count_sent(1_000)
    s.sent_out(0)
    assert s.report(1, {1, 2, 3}, {0: frozenset({4})}, seen=13_800, http_only=True) == {
        0, 1, 2, 3,
    }  # fmt: skip
