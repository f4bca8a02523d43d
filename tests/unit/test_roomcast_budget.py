"""The appliance's link is one budget (issue 29): the sessions' equal shares of the
multicast rate, stepping down when a session starts and back up when one ends; the
sender's pacer following its share at once; the transmit drops read from tc; and the
HTTP bucket that chunks pass while sessions run, at what the sessions leave of the link.
Pure, on simulated clocks; no network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_kit import V1, bearer, chunk_url, write_image
from werkzeug.test import EnvironBuilder

import appliance.roomcast.sender as sender_module
from appliance.config import Layout
from appliance.formats.manifest import Chunk, Disk, Manifest
from appliance.formats.names import chunk_relpath
from appliance.http import create_app
from appliance.http.files import FileBody
from appliance.http.store_files import PacedBody
from appliance.roomcast import Roomcast
from appliance.roomcast.budget import http_rate, shares
from appliance.roomcast.link import DropCounter, HttpPacer, parse_tc_drops
from appliance.roomcast.sender import Pacer
from appliance.settings import Settings, from_sources

SEND = 40 * 1510  # one GSO send of 40 datagrams, as the wire counts it


class Clock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 1e-9)


# -- the shares ---------------------------------------------------------------------------
def test_one_session_has_the_whole_budget() -> None:
    assert shares(45_000_000, ["a"]) == {"a": 45_000_000}


def test_two_and_three_sessions_split_it_equally() -> None:
    assert shares(45_000_000, ["a", "b"]) == {"a": 22_500_000, "b": 22_500_000}
    assert shares(45_000_000, ["a", "b", "c"]) == {
        "a": 15_000_000,
        "b": 15_000_000,
        "c": 15_000_000,
    }


def test_shares_never_sum_past_the_budget() -> None:
    # 100 bit/s over 3: 33 each, 99 in all (rounded down, never up).
    assert shares(100, ["a", "b", "c"]) == {"a": 33, "b": 33, "c": 33}
    assert shares(900_000_001, [1, 2, 3, 4, 5, 6, 7]) == dict.fromkeys(range(1, 8), 128_571_428)
    assert sum(shares(900_000_001, range(7)).values()) == 899_999_996


def test_when_one_ends_the_others_step_back_up() -> None:
    assert shares(45_000_000, ["a", "b", "c"])["b"] == 15_000_000
    assert shares(45_000_000, ["b", "c"]) == {"b": 22_500_000, "c": 22_500_000}
    assert shares(45_000_000, ["c"]) == {"c": 45_000_000}
    assert shares(45_000_000, []) == {}


def test_a_share_is_never_zero() -> None:
    assert shares(2, ["a", "b", "c"]) == {"a": 1, "b": 1, "c": 1}
    assert shares(0, ["a"]) == {"a": 1}


def test_http_gets_what_the_sessions_leave_at_least_a_tenth() -> None:
    assert http_rate(50_000_000, []) == 0  # no session: HTTP is not paced
    assert http_rate(50_000_000, [45_000_000]) == 5_000_000
    assert http_rate(50_000_000, [22_500_000, 22_500_000]) == 5_000_000
    assert http_rate(100_000_000, [20_000_000]) == 80_000_000
    assert http_rate(50_000_000, [50_000_000]) == 5_000_000  # the floor
    assert http_rate(50_000_000, [30_000_000, 30_000_000]) == 5_000_000


# -- the sender's pacer follows its share -------------------------------------------------
def achieved(pacer: Pacer, clock: Clock, sends: int) -> float:
    start = clock()
    for _ in range(sends):
        pacer.take(SEND)
    return sends * SEND * 8 / (clock() - start)


def test_the_pacer_follows_a_lower_then_a_higher_rate_at_once() -> None:
    clock = Clock()
    share = {"bits": 90_000_000}
    pacer = Pacer(90_000_000, 65_536, clock=clock, sleep=clock.sleep, follow=lambda: share["bits"])
    assert 89_000_000 < achieved(pacer, clock, 400) <= 90_500_000
    share["bits"] = 45_000_000  # a second room starts
    clock.slept.clear()
    pacer.take(SEND)
    # The very next send waits as 45 Mbit/s says: 60,400 bytes = 10.74 ms.
    assert sum(clock.slept) == pytest.approx(0.0107378, abs=1e-6)
    assert pacer.bits == 45_000_000
    assert 44_900_000 < achieved(pacer, clock, 200) <= 45_100_000
    share["bits"] = 90_000_000  # it ended
    assert 89_800_000 < achieved(pacer, clock, 400) <= 90_200_000


def test_set_rate_sizes_the_bucket_as_pacer_burst_does() -> None:
    clock = Clock()
    pacer = Pacer(1_000_000_000, 500_000, clock=clock, sleep=clock.sleep)
    assert pacer.tokens == 500_000
    pacer.set_rate(45_000_000)  # 4 ms of 45 Mbit/s is 22,500 bytes: one GSO send's 64 KiB
    assert pacer.burst == 65_536
    assert pacer.tokens == 65_536  # what the shallower bucket holds
    pacer.set_rate(2_000_000_000)
    assert pacer.burst == 1_000_000
    clock.now += 0.001  # 1 ms at 2 Gbit/s: 250,000 bytes more
    pacer.take(0)
    assert pacer.tokens == pytest.approx(315_536)


# -- transmit drops -----------------------------------------------------------------------
TBF = (
    '[{"kind":"tbf","handle":"8018:","root":true,"refcnt":3,"options":{"rate":6250000,'
    '"burst":65531,"lat":50000},"bytes":91234567,"packets":61020,"drops":16670,'
    '"overlimits":40312,"requeues":0,"backlog":0,"qlen":0},{"kind":"ingress","handle":'
    '"ffff:","parent":"ffff:fff1","options":{},"bytes":0,"packets":0,"drops":5,'
    '"overlimits":0,"requeues":0,"backlog":0,"qlen":0}]'
)
MQ = (
    '[{"kind":"mq","handle":"0:","root":true,"options":{},"bytes":900,"packets":9,'
    '"drops":12,"overlimits":0,"requeues":1,"backlog":0,"qlen":0},'
    '{"kind":"fq_codel","handle":"0:","parent":":2","options":{"limit":10240},"bytes":400,'
    '"packets":4,"drops":5,"overlimits":0,"requeues":0,"backlog":0,"qlen":0},'
    '{"kind":"fq_codel","handle":"0:","parent":":1","options":{"limit":10240},"bytes":500,'
    '"packets":5,"drops":7,"overlimits":0,"requeues":1,"backlog":0,"qlen":0}]'
)


def test_tc_drops_are_the_root_qdiscs() -> None:
    assert parse_tc_drops(TBF) == 16670  # not the ingress qdisc's 5
    assert parse_tc_drops(MQ) == 12  # the mq root counts its queues' 5 + 7 already
    noqueue = '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{},'
    assert parse_tc_drops(noqueue + '"bytes":0,"packets":0,"drops":0}]') == 0
    assert parse_tc_drops("[]") is None
    assert parse_tc_drops("") is None
    assert parse_tc_drops("Cannot find device") is None
    assert parse_tc_drops('{"drops": 3}') is None


def test_drops_are_read_at_most_twice_a_second_unless_fresh() -> None:
    clock = Clock()
    reads: list[str] = []

    def read(name: str) -> int:
        reads.append(name)
        return 100 + len(reads)

    drops = DropCounter(lambda: "eth1", read, every=0.5, clock=clock)
    assert drops() == 101
    clock.now = 0.3
    assert drops() == 101
    assert drops(fresh=True) == 102
    clock.now = 0.9
    assert drops() == 103
    assert reads == ["eth1", "eth1", "eth1"]
    assert DropCounter(lambda: None, read)() is None


# -- Roomcast: shares as sessions come and go, and HTTP beside them -------------------------
class FakeSender:
    """Stands in for the sender: no socket, no thread; the test ends its session."""

    made: list[FakeSender] = []

    def __init__(self, session: Any, address: str, path_of: Any, **kw: Any) -> None:
        self.session, self.on_end = session, kw["on_end"]
        FakeSender.made.append(self)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def end(self) -> None:
        self.session.ended = True
        self.on_end(self.session)


def manifest(image: str) -> Manifest:
    digest = {"a": "a" * 64, "b": "b" * 64, "c": "c" * 64}[image]
    disk = Disk(index=0, size=65536, chunk_size=65536, chunks=(Chunk("hash", digest),))
    return Manifest(image=image, version=V1, created="2026-12-05T00:00:00Z", disks=(disk,))


@pytest.fixture
def roomcast(monkeypatch: pytest.MonkeyPatch) -> Iterator[Roomcast]:
    FakeSender.made = []
    monkeypatch.setattr(sender_module, "Sender", FakeSender)
    no_db: Any = lambda: None  # noqa: E731  (the fake sender never asks it)
    rc = Roomcast("10.83.0.1", Path, no_db, rate=45_000_000, query_interval=0, nice=0)
    counts = iter([40, 40, 43, 47, 47, 47, 47])
    rc.drops = DropCounter(lambda: "eth1", lambda _name: next(counts), every=0)
    yield rc
    for sender in FakeSender.made:  # the budget's keeper thread ends with the last
        if not sender.session.ended:
            sender.end()


def test_the_link_is_the_flag_else_the_interface_else_the_multicast_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import appliance.roomcast as roomcast_module

    no_db: Any = lambda: None  # noqa: E731
    speeds = {"eth1": 1_000_000_000}
    monkeypatch.setattr(roomcast_module, "interface_of", lambda _addr: "eth1")
    monkeypatch.setattr(roomcast_module, "interface_speed", lambda name: speeds.get(name, 0))
    # A 1 Gbit/s port with multicast capped at 100M: the link is the port's, so HTTP
    # beside a session gets 900M, not the 11M of 100M / 0.9.
    rc = Roomcast("10.83.0.1", Path, no_db, rate=100_000_000, nice=0)
    assert rc.link == 1_000_000_000
    assert http_rate(rc.link, [rc.rate]) == 900_000_000
    # --link-rate wins over the port.
    assert Roomcast("10.83.0.1", Path, no_db, rate=100_000_000, link=200_000_000).link == (
        200_000_000
    )
    # A port that does not say (speed 0): 90 % of the link is the multicast rate.
    speeds.clear()
    assert Roomcast("10.83.0.1", Path, no_db, rate=45_000_000, nice=0).link == 50_000_000
    # Neither: the default rate is 90 % of it.
    assert Roomcast("10.83.0.1", Path, no_db, nice=0).link == 1_000_000_000


def test_sessions_step_down_and_up_and_http_takes_the_rest(roomcast: Roomcast) -> None:
    rc = roomcast
    assert rc.link == 50_000_000  # --multicast-rate 45M is 90 % of a 50 Mbit/s link
    assert rc.http_pace() is None  # no session: HTTP is not paced
    a = rc.session_for(manifest("a"))
    assert a.rate == 45_000_000
    assert rc.http.bits == 5_000_000
    b = rc.session_for(manifest("b"))
    assert (a.rate, b.rate) == (22_500_000, 22_500_000)  # a stepped down at b's start
    assert rc.http.bits == 5_000_000
    c = rc.session_for(manifest("c"))
    assert (a.rate, b.rate, c.rate) == (15_000_000, 15_000_000, 15_000_000)
    assert rc.session_for(manifest("b")) is b  # the same version: the same session
    FakeSender.made[0].end()
    assert (b.rate, c.rate) == (22_500_000, 22_500_000)  # a ended: the others step up
    FakeSender.made[1].end()
    assert c.rate == 45_000_000
    assert rc.http_pace() is not None
    FakeSender.made[2].end()
    assert rc.http.bits == 0
    assert rc.http_pace() is None
    assert rc.sessions() == []


def test_a_session_whose_seats_all_left_gives_its_share_back(roomcast: Roomcast) -> None:
    rc = roomcast
    a = rc.session_for(manifest("a"))
    a.join(1, "pc1", "10.83.0.11", {0})
    b = rc.session_for(manifest("b"))
    b.join(2, "pc2", "10.83.0.12", {0})
    assert rc.rebalance()
    assert (a.rate, b.rate) == (22_500_000, 22_500_000)
    a.leave(1)  # its session lingers (30 s) but sends nothing: b takes the whole budget
    assert rc.rebalance()
    assert b.rate == 45_000_000 and rc.http.bits == 5_000_000
    b.report(2, set(), {}, http_only=True, why="test")  # b's only seat went HTTP-only
    assert rc.rebalance()
    assert rc.http_pace() is None  # nothing is multicast: HTTP has the whole link
    for sender in FakeSender.made:
        sender.end()
    assert not rc.rebalance()  # none runs: the keeper thread ends


def test_status_says_the_drops_since_the_session_started(roomcast: Roomcast) -> None:
    a = roomcast.session_for(manifest("a"))  # drops 40 at its start
    b = roomcast.session_for(manifest("b"))  # 40 at its start
    assert a.status()["tx_drops"] == 3  # 43 now
    assert b.status()["tx_drops"] == 7  # 47 now
    assert a.status()["rate"] == 22_500_000


def test_the_link_is_link_rate_else_rate_over_090() -> None:
    conn: Any = lambda: None  # noqa: E731
    both = Roomcast("10.83.0.1", Path, conn, rate=45_000_000, link=100_000_000)
    assert (both.rate, both.link) == (45_000_000, 100_000_000)
    link_only = Roomcast("10.83.0.1", Path, conn, link=100_000_000)
    assert (link_only.rate, link_only.link) == (90_000_000, 100_000_000)
    assert Roomcast("10.83.0.1", Path, conn, rate=900_000_000).link == 1_000_000_000


def test_link_rate_is_a_setting_parsed_like_the_multicast_rate() -> None:
    assert Settings().link_rate == 0
    assert from_sources(None, {"SLATE_LINK_RATE": "1G"}).link_rate == 1_000_000_000
    assert from_sources(None, {"SLATE_LINK_RATE": "50m"}).link_rate == 50_000_000
    assert from_sources(None, {"SLATE_LINK_RATE": "auto"}).link_rate == 0


# -- the HTTP bucket ----------------------------------------------------------------------
def test_the_http_bucket_holds_its_rate_counting_frames_on_the_wire() -> None:
    clock = Clock()
    http = HttpPacer(clock=clock, sleep=clock.sleep, burst=65_536)
    assert http.take(16_384) == 0.0  # not paced
    http.set_rate(5_000_000)
    for _ in range(400):  # 6.25 MiB of chunk bodies
        http.take(16_384)
    # 400 x 16,384 bytes x 1514/1448 (TCP/IP/Ethernet headers), less the 64 KiB the
    # full bucket let go at once, at 5 Mbit/s: 10.8588 s.
    assert clock.now == pytest.approx(10.8588, abs=1e-4)
    http.set_rate(0)
    assert http.take(16_384) == 0.0


def test_blocks_of_threads_in_turn_go_into_debt_and_wait_their_turn() -> None:
    clock = Clock()
    http = HttpPacer(clock=clock, sleep=lambda s: None, burst=0)
    http.set_rate(8_000_000)  # 1 MB/s
    waits = [http.take(100_000) for _ in range(3)]  # three threads, nobody slept yet
    per = 100_000 * 1514 / 1448 / 1_000_000  # 0.10456 s each
    assert waits == pytest.approx([per, 2 * per, 3 * per])
    assert per == pytest.approx(0.104558, abs=1e-6)


@pytest.fixture
def store(home: Path) -> Any:
    layout = Layout(home)
    image = write_image(layout, "win11", V1)
    app = create_app(layout, Settings(multicast_rate=45_000_000), plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host("aa:bb:cc:00:00:01", "pc1", actor="test")
    job = facade.jobs.restore("pc1", "win11", actor="test")
    return app, facade, image, bearer(facade.jobs.token(job.id)), layout


def wsgi_body(app: Any, url: str, headers: dict[str, str]) -> tuple[object, bytes]:
    """What the server's gateway gets for a GET of ``url`` (its type decides sendfile),
    and the body it writes."""
    environ = EnvironBuilder(path=url, headers=headers).get_environ()
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        return body, b"".join(body)
    finally:
        body.close()


def test_chunks_pass_the_bucket_only_while_sessions_run(store: Any) -> None:
    app, facade, image, auth, layout = store
    digest = image.digests[0]
    stored = (layout.store / chunk_relpath(digest)).read_bytes()
    body, data = wsgi_body(app, chunk_url(digest), auth)
    assert isinstance(body, FileBody) and data == stored  # no session: sendfile, unpaced
    taken: list[int] = []
    facade.roomcast.http_pace = lambda: taken.append  # a session runs
    body, data = wsgi_body(app, chunk_url(digest), auth)
    assert isinstance(body, PacedBody) and data == stored
    assert sum(taken) == len(stored) == 65_546 and taken[:4] == [16_384] * 4
    # Other answers (the manifest here) never wait for the bucket.
    taken.clear()
    body, data = wsgi_body(app, f"/store/manifests/win11/{V1}.json", auth)
    assert isinstance(body, FileBody) and data.startswith(b"{")
    assert taken == []
