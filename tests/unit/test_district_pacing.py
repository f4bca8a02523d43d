"""The district's fetch window and bandwidth cap, and the subscriptions table (issue 30):
pure, on simulated clocks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from appliance import db
from appliance.config import Layout
from appliance.district import libraries
from appliance.district.pacing import BURST, Window
from appliance.errors import Conflict, NotFound, UsageError
from appliance.pacing import TokenBucket


def at(hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return datetime(2026, 12, 7, int(h), int(m))


def test_a_window_that_wraps_past_midnight() -> None:
    w = Window.parse("18:00-06:00")
    assert w is not None and str(w) == "18:00-06:00"
    assert [w.open_at(at(t)) for t in ("17:59", "18:00", "23:59", "00:00", "05:59", "06:00")] == [
        False, True, True, True, True, False,
    ]  # fmt: skip
    day = Window.parse("09:30-10:00")
    assert day is not None
    assert [day.open_at(at(t)) for t in ("09:29", "09:30", "09:59", "10:00")] == [
        False, True, True, False,
    ]  # fmt: skip
    assert Window.parse("") is None and Window.parse("  ") is None


@pytest.mark.parametrize("bad", ["18-06", "18:00", "24:00-06:00", "18:00-6:00", "18:60-06:00",
                                 "06:00-06:00", "18:00 - 06:00"])  # fmt: skip
def test_bad_windows_say_how_to_write_one(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        Window.parse(bad)
    assert "HH:MM-HH:MM" in (info.value.hint or "") or "leave --window out" in (
        info.value.hint or ""
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_cap_holds_the_rate_after_its_burst() -> None:
    clock = Clock()
    cap = TokenBucket(20_000_000, burst=BURST, clock=clock, sleep=clock.sleep)  # 2.5 MB/s
    block = 64 * 1024
    sent = 0
    while sent < 50_000_000:
        cap.take(block)
        sent += block
    # 50 MB at 2.5 MB/s, less the first burst that needed no wait
    assert clock.now == pytest.approx((sent - BURST) / 2_500_000, rel=1e-6)
    assert TokenBucket(0, burst=BURST, clock=clock, sleep=clock.sleep).take(10**9) == 0.0


def test_subscriptions_are_kept_set_again_and_removed(home: Path) -> None:
    layout = Layout(home)
    conn = db.connect(layout.db)
    libraries.add(conn, layout, "district", "s3://library", publisher_key="00" * 32, actor="t")
    libraries.add(conn, layout, "mine", "s3://mine", actor="t")  # this appliance publishes
    sub = libraries.subscribe(conn, "district", "win11", window="18:00-06:00", cap=50_000_000,
                              actor="t")  # fmt: skip
    assert sub.to_dict() == {"library": "district", "image": "win11", "window": "18:00-06:00",
                             "cap": 50_000_000}  # fmt: skip
    libraries.subscribe(conn, "district", "win11", window="", cap=0, actor="t")
    assert [s.to_dict() for s in libraries.subscriptions(conn)] == [
        {"library": "district", "image": "win11", "window": "any time", "cap": 0}
    ]
    with pytest.raises(UsageError, match="not a window"):
        libraries.subscribe(conn, "district", "ubuntu", window="night", cap=0, actor="t")
    with pytest.raises(UsageError, match="not an image name"):
        libraries.subscribe(conn, "district", "../x", window="", cap=0, actor="t")
    with pytest.raises(Conflict, match="this appliance publishes to mine"):
        libraries.subscribe(conn, "mine", "win11", window="", cap=0, actor="t")
    with pytest.raises(NotFound, match="no library nowhere"):
        libraries.subscribe(conn, "nowhere", "win11", window="", cap=0, actor="t")
    libraries.unsubscribe(conn, "district", "win11", actor="t")
    with pytest.raises(NotFound, match="no subscription to win11 from district"):
        libraries.unsubscribe(conn, "district", "win11", actor="t")
    libraries.subscribe(conn, "district", "win11", window="", cap=0, actor="t")
    libraries.remove(conn, layout, "district", actor="t")  # its subscriptions go with it
    assert libraries.subscriptions(conn) == []


def test_a_job_for_a_version_not_whole_here_is_refused_with_where_it_is(home: Path) -> None:
    # What a fetch keeps under district/ (the signed manifest) and the chunks it stored so
    # far: the restore job is refused when it is made, saying where the version is.
    from http_kit import V1, V2, write_image

    from appliance.formats.names import chunk_relpath, manifest_relpath
    from appliance.jobs import Jobs
    from appliance.machines import Inventory
    from appliance.store import Store

    layout = Layout(home)
    write_image(layout, "win11", V1)
    image = write_image(layout, "win11", V2)  # then made "not whole": as fetched in part
    cached = layout.district / "district" / manifest_relpath("win11", V2)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(image.manifest.to_json())
    (layout.store / manifest_relpath("win11", V2)).unlink()
    (layout.store / chunk_relpath(sorted(image.chunks)[0])).unlink()
    conn = db.connect(layout.db)
    Inventory(conn).add_host("aa:bb:cc:00:00:01", "pc1", actor="t")
    with pytest.raises(NotFound, match=f"image win11 has no version {V2}") as info:
        Jobs(conn, layout).restore("pc1", f"win11@{V2}", actor="t")
    assert info.value.hint == (
        f"win11@{V2} is in the library district but not whole here (2 of 3 chunks):"
        f" `slate library fetch win11@{V2} --from district`, or wait for its subscription;"
        " a restore starts only from a version that is all here"
    )
    assert Store(layout).library_hint("win11", V1) is None  # nothing about it in a library
