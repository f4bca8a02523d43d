"""The sender's token bucket, on a simulated clock: it holds the set rate, and its depth
makes up for a sender thread that wakes late."""

from __future__ import annotations

from appliance.roomcast.sender import Pacer, pacer_burst

SEND = 40 * 1510  # one GSO send of 40 datagrams, as the wire counts it


class Clock:
    """Time that moves only when the pacer sleeps, each sleep ``late`` seconds too long."""

    def __init__(self, late: float = 0.0) -> None:
        self.now = 0.0
        self.late = late

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        # A real sleep always moves time on, however short it was asked to be.
        self.now += max(seconds, 1e-9) + self.late


def achieved(rate: int, burst: int, late: float, sends: int = 20_000) -> float:
    """bit/s that ``sends`` back-to-back sends of SEND bytes got through the pacer."""
    clock = Clock(late)
    pacer = Pacer(rate, burst, clock=clock, sleep=clock.sleep)
    start = clock()
    for _ in range(sends):
        pacer.take(SEND)
    return sends * SEND * 8 / (clock() - start)


def test_depth_is_four_milliseconds_of_the_rate_at_least_one_send_at_most_a_mib() -> None:
    assert pacer_burst(1_000_000_000) == 500_000
    assert pacer_burst(2_000_000_000) == 1_000_000
    assert pacer_burst(10_000_000_000) == 1_048_576
    assert pacer_burst(18_000_000) == 65_536
    assert pacer_burst(1) == 65_536


def test_a_punctual_sender_gets_the_rate_and_no_more() -> None:
    got = achieved(1_000_000_000, pacer_burst(1_000_000_000), late=0.0)
    assert 0.999e9 < got <= 1.001e9  # the full bucket at the start: 0.04 % of 1.2 GB
    got = achieved(18_000_000, pacer_burst(18_000_000), late=0.0, sends=500)
    assert 0.99 * 18e6 < got <= 1.01 * 18e6


def test_waking_late_is_made_up_by_the_bucket_depth() -> None:
    # Every sleep 0.2 ms too long, at 1 Gbit/s (a send lasts 0.48 ms): a bucket one send
    # deep loses the lateness each time; 4 ms of depth carries it over.
    shallow = achieved(1_000_000_000, 64 * 1024, late=0.0002)
    deep = achieved(1_000_000_000, pacer_burst(1_000_000_000), late=0.0002)
    assert shallow < 0.8e9
    assert deep > 0.99e9
