"""The appliance's link is one budget: each room session's share of the multicast rate,
and what chunks served by HTTP may take beside them (docs/roomcast.md, "One link, many
rooms").  Pure functions: :class:`appliance.roomcast.Roomcast` applies them whenever a
session starts or ends.

Why an equal split.  Two rooms restore different images at once; alone, room 1 takes
T1 and room 2 takes T2, with T1 <= T2 (each alone at the whole budget).  Each at half
the budget sends room 1's bytes in 2*T1, and when it ends room 2 steps back up to the
whole budget with T2 - T1 of its time-alone left: room 1 ends at 2*T1 <= T1 + T2, room 2
at T1 + T2.  Both are within the sum of their times alone, the goal being 1.1 x that
sum (the 10 % is the tail and the repairs a session has at any rate).  In general, with
equal shares that step back up when a session ends the budget is used in full while
any session still sends, so every session ends by the time all of them would have taken
one after the other: no worse than queueing them, and nobody waits for a turn (a seat
that hears nothing for a few seconds goes HTTP-only).  Shares by bytes left would end
all rooms together at T1 + T2 (room 1 later than with equal shares); shortest first
would end room 1 at T1 but leave room 2 silent until then, and needs the sizes of
sessions whose seats are still joining.  Equal needs nothing but the count.

Without a budget every session took the whole rate: two rooms offered 2 x 45 Mbit/s to
a 50 Mbit/s link, the appliance's own transmit queue dropped 16,670 packets and the
seats spent the restore in repairs (issue 29).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

MIN_SHARE = 1  # bit/s: no share is ever 0 (a pacer divides by it)
HTTP_FLOOR = 10  # %: chunks served by HTTP get at least this much of the link


def shares(budget: int, sessions: Iterable[K]) -> dict[K, int]:
    """Each live session's rate (bit/s) out of ``budget``: equal shares, rounded down
    so that they sum to at most the budget (whenever the budget is at least
    :data:`MIN_SHARE` per session), never below :data:`MIN_SHARE`."""
    live = list(dict.fromkeys(sessions))
    if not live:
        return {}
    each = max(MIN_SHARE, budget // len(live))
    return dict.fromkeys(live, each)


def http_rate(link: int, session_rates: Iterable[int]) -> int:
    """The rate (bit/s) of the one token bucket that chunk bodies served by HTTP pass
    while sessions run: the link less the sessions' rates, at least :data:`HTTP_FLOOR`
    % of the link.  0 when no session runs: HTTP is not paced then."""
    rates = list(session_rates)
    if not rates:
        return 0
    return max(link - sum(rates), link * HTTP_FLOOR // 100, MIN_SHARE)
