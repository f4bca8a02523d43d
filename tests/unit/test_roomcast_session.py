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
