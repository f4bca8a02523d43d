"""What a room session multicasts next: pure functions of what the seats still need.

After Frisbee (Emulab, USENIX ATC 2003): receivers drive the session, the sender keeps
no per-receiver transmit state and every decision is made again from the seats' latest
reports.  A chunk is named by its index in the session's chunk table.

Order of work (:func:`pick`):

1. **Repairs.**  Pieces that seats lost from chunks they hold in part, the union over
   seats, one chunk at a time (the one most seats ask for first).  A chunk's repair is
   not sent again within ``repair_holdoff`` seconds: the seats' reports in flight still
   name the pieces just sent.
2. **The first pass**, in disk order (sequential writes for hard disks) over chunks that
   two or more seats need whole — seats that have not joined yet count as needing every
   chunk, since a classroom's machines boot over a minute or so and nothing waits for
   them.  A chunk only one seat needs is skipped here: it goes to that seat by HTTP.
3. **Then the most wanted first**: chunks two or more joined seats still need whole,
   not sent in the last ``holdoff`` seconds (the time for the seats' reports to show
   that they got it).
Nothing to do, or no seat listening yet: the session idles (beacons only).

:func:`http_share` says which chunks a seat takes by HTTP meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

HOLDOFF = 3.0  # s before a whole chunk is multicast again
REPAIR_HOLDOFF = 0.5  # s before the same chunk's lost pieces are sent again


@dataclass(frozen=True)
class SeatNeeds:
    """One joined seat as the scheduler sees it: chunks it needs whole, and for chunks
    it holds in part the pieces it lost.  ``http_only`` seats (multicast does not reach
    them, or they are too slow for the session) take everything by HTTP."""

    need: frozenset[int]
    partial: Mapping[int, frozenset[int]] = field(default_factory=dict)
    http_only: bool = False


@dataclass(frozen=True)
class Pick:
    """The next thing to send: ``chunk`` (None = idle) with ``pieces`` (None = the whole
    chunk, else a repair of just these), and the first pass's position afterwards
    (``cursor == chunks`` once the first pass is over)."""

    chunk: int | None
    cursor: int
    pieces: frozenset[int] | None = None


def whole_demand(seats: Iterable[SeatNeeds]) -> Counter[int]:
    """Seats (multicast ones) that need each chunk whole."""
    count: Counter[int] = Counter()
    for s in seats:
        if not s.http_only:
            count.update(s.need)
    return count


def pick(
    seats: Sequence[SeatNeeds],
    chunks: int,
    cursor: int,
    *,
    expected: int = 0,
    last_sent: Mapping[int, float] | None = None,
    last_repair: Mapping[int, float] | None = None,
    now: float = 0.0,
    holdoff: float = HOLDOFF,
    repair_holdoff: float = REPAIR_HOLDOFF,
    min_demand: int = 2,
) -> Pick:
    """The next send of a session of ``chunks`` chunks (see the module's docstring).
    ``expected``: seats whose jobs are due but that have not joined yet.  ``min_demand``
    1: multicast even what one seat alone needs (``--transport multicast``)."""
    last_sent = last_sent or {}
    last_repair = last_repair or {}
    repair = _repair(seats, last_repair, now, repair_holdoff)
    if repair is not None:
        return Pick(repair[0], cursor, repair[1])
    if all(s.http_only for s in seats):
        # Nobody listens (the session's sender starts a moment before its first seat has
        # joined): the first pass must not run past chunks that nobody could catch, or
        # the first seat would find them all behind the cursor and take them by HTTP.
        return Pick(None, cursor)
    demand = whole_demand(seats)
    while cursor < chunks:
        k = cursor
        cursor += 1
        if demand[k] >= min_demand or (demand[k] == 1 and expected > 0):
            return Pick(k, cursor)
    best: tuple[int, int] | None = None  # (-demand, index): most wanted, then disk order
    for k, d in demand.items():
        if d >= min_demand and now - last_sent.get(k, float("-inf")) >= holdoff:
            key = (-d, k)
            if best is None or key < best:
                best = key
    return Pick(None if best is None else best[1], cursor)


def _repair(
    seats: Sequence[SeatNeeds], last_repair: Mapping[int, float], now: float, holdoff: float
) -> tuple[int, frozenset[int]] | None:
    asked: dict[int, set[int]] = {}
    askers: Counter[int] = Counter()
    for s in seats:
        if s.http_only:
            continue
        for k, lost in s.partial.items():
            if lost and now - last_repair.get(k, float("-inf")) >= holdoff:
                asked.setdefault(k, set()).update(lost)
                askers[k] += 1
    if not asked:
        return None
    k = min(asked, key=lambda c: (-askers[c], c))
    return k, frozenset(asked[k])


def http_share(
    seat: SeatNeeds,
    seats: Sequence[SeatNeeds],
    cursor: int,
    *,
    expected: int = 0,
    min_demand: int = 2,
) -> frozenset[int]:
    """The chunks ``seat`` should fetch by HTTP now: everything when it is HTTP-only;
    else the chunks too few seats need whole for multicast to carry them (no other seat,
    unless ``min_demand`` is 1) — behind the first pass's cursor, or anywhere when no
    other seat is still expected."""
    if seat.http_only:
        return seat.need | frozenset(seat.partial)
    demand = whole_demand(seats)
    return frozenset(
        k for k in seat.need if demand[k] < min_demand and (k < cursor or expected == 0)
    )
