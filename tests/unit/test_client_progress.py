"""The progress reporter: rate and ETA from recent samples, the console bar, log lines
kept for the appliance (no appliance here: api=None)."""

from __future__ import annotations

import io
import time

from bootimage.client.main import work
from bootimage.client.progress import Reporter


def test_snapshot_rate_eta_and_bar() -> None:
    out = io.StringIO()
    rep = Reporter(None, console=True, stream=out)
    rep.start_phase("restore", 100 * 2**20)
    rep.snapshot()
    rep.add(10 * 2**20)
    time.sleep(0.05)
    snap = rep.snapshot()
    assert snap["phase"] == "restore" and snap["done"] == 10 * 2**20
    assert isinstance(snap["rate"], float) and snap["rate"] > 0
    assert isinstance(snap["eta"], float) and snap["eta"] > 0
    rep.flush()
    assert "restore" in out.getvalue() and "10.0%" in out.getvalue()
    rep.set_phase("finishing")
    assert rep.snapshot()["done"] == 10 * 2**20  # a phase change keeps the counts


def test_log_lines_are_printed_and_kept() -> None:
    out = io.StringIO()
    rep = Reporter(None, console=False, stream=out)
    rep.log("disk 0 -> /dev/vda")
    assert "disk 0 -> /dev/vda" in out.getvalue()
    assert "\r" not in out.getvalue()  # no bar codes without a console


class Requests:
    """Records the client API calls the reporter makes (the paths, in order)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def post_json(self, path: str, body: object, retry: bool = True) -> dict[str, object]:
        self.paths.append(path)
        return {}


def test_a_second_stop_sends_only_the_new_log_lines() -> None:
    api = Requests()
    rep = Reporter(api, console=False, stream=io.StringIO())  # type: ignore[arg-type]
    rep.start()
    rep.log("done: 64 MiB verified")
    rep.stop()
    assert api.paths == ["/log", "/progress"]
    rep.stop()  # main's finally: nothing new, nothing sent
    assert api.paths == ["/log", "/progress"]
    rep.log("waiting for a power request")
    rep.stop()
    assert api.paths == ["/log", "/progress", "/log"]


def test_after_detach_lines_are_printed_and_nothing_is_posted() -> None:
    api = Requests()
    out = io.StringIO()
    rep = Reporter(api, console=False, stream=out)  # type: ignore[arg-type]
    rep.start()
    rep.detach()  # the job has ended on the appliance: it would refuse both with 409
    rep.log("done: 64 MiB verified")
    rep.stop()
    rep.stop()
    assert api.paths == []
    assert "done: 64 MiB verified" in out.getvalue()


def test_a_job_ends_with_done_and_no_request_after_it() -> None:
    """The client's last requests: the log and progress, then /done — nothing after it
    (the appliance refuses an ended job's log: two refused posts at every client's end)."""
    api = Requests()
    rep = Reporter(api, console=False, stream=io.StringIO())  # type: ignore[arg-type]
    rep.start()
    assert work(api, {"id": 7, "action": "register"}, None, rep)  # type: ignore[arg-type]
    rep.stop()
    rep.stop()
    assert api.paths == ["/health", "/log", "/progress", "/done"]
