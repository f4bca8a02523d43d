"""Fuzzing parse + classify + the server's packet handler: only ParseError may escape
parse/classify, and the handler never raises, whatever arrives (>= 100k packets)."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import db
from appliance.dhcp.decide import BootTarget, classify
from appliance.dhcp.leases import Pool
from appliance.dhcp.options import ParseError
from appliance.dhcp.packet import MAGIC, build, parse
from appliance.dhcp.server import DhcpServer

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dhcp"
SEEDS = [p.read_bytes() for p in sorted(GOLDEN.glob("*.bin"))]
MUTATIONS = 100_000


def _parse_and_classify(data: bytes) -> None:
    try:
        msg = parse(data)
    except ParseError:
        return
    assert parse(build(msg)) == msg
    with contextlib.suppress(ParseError):
        classify(msg)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        if roll < 0.5 and buf:  # flip bytes, biased to the option area
            i = rng.randrange(236 if len(buf) > 240 and rng.random() < 0.8 else 0, len(buf))
            buf[i] = rng.randrange(256)
        elif roll < 0.7:  # truncate
            del buf[rng.randrange(len(buf) + 1) :]
        elif roll < 0.85:  # insert a random option
            code, value = rng.randrange(256), rng.randbytes(rng.randrange(20))
            at = rng.randrange(240, len(buf) + 1) if len(buf) > 240 else len(buf)
            buf[at:at] = bytes((code, len(value))) + value
        else:  # overload flag with junk in file/sname
            buf += bytes((52, 1, rng.randrange(4)))
    return bytes(buf)


def test_seeded_mutation_loop(tmp_path: Path) -> None:
    assert SEEDS, "no golden captures to mutate"
    rng = random.Random(1125)
    server = _server(tmp_path)
    for n in range(MUTATIONS):
        data = _mutate(rng, rng.choice(SEEDS))
        _parse_and_classify(data)
        if n % 10 == 0:  # the full handler (with SQLite writes) on a tenth of them
            server.handle(data, 67, ("10.9.0.50", 68))
    assert server.stats["received"] == MUTATIONS // 10
    assert server.stats["errors"] == 0


def _server(tmp_path: Path) -> DhcpServer:
    pool = Pool.parse("10.9.0.100-10.9.0.110", "10.9.0.0/24", lease_seconds=60)
    hook = lambda c: BootTarget.for_http("10.9.0.1", 8080, c.mac)  # noqa: E731
    conn = db.connect(tmp_path / "slate.db")
    return DhcpServer("none0", "10.9.0.1", "full", hook, pools=[pool], conn=conn)


options_area = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=12).map(
    lambda opts: b"".join(bytes((c, len(v))) + v for c, v in opts)
)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(header=st.binary(min_size=236, max_size=236), area=options_area, tail=st.binary(max_size=8))
def test_hypothesis_structured_packets(header: bytes, area: bytes, tail: bytes) -> None:
    _parse_and_classify(header + MAGIC + area + tail)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=600))
def test_hypothesis_random_bytes(data: bytes) -> None:
    _parse_and_classify(data)


def test_proxy_handler_survives_mutations(tmp_path: Path) -> None:
    hook = lambda c: BootTarget.for_http("10.9.0.1", 8080, c.mac)  # noqa: E731
    server = DhcpServer("none0", "10.9.0.1", "proxy", hook)
    rng = random.Random(7)
    for _ in range(5000):
        server.handle(_mutate(rng, rng.choice(SEEDS)), rng.choice((67, 4011)), ("0.0.0.0", 68))
    assert server.stats["errors"] == 0
