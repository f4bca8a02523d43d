"""While a room session runs, every thread of the appliance's process runs at the session
nice (the sender shares the GIL with the request threads); the last session's end puts
them back, threads started meanwhile included.  Without root the kernel refuses: the
appliance says so and runs as it was.  Each case runs in a child process, so this test's
own process keeps its priority."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, logging, os, threading
from appliance.roomcast.priority import Priority, nice_of, tasks

logging.basicConfig(level=logging.WARNING, format="%(message)s")
if os.environ.get("AS_NOBODY"):  # after the imports: nobody cannot read root's Python
    os.setgid(65534); os.setuid(65534)
hold = threading.Event()
def worker():
    hold.wait()
early = threading.Thread(target=worker); early.start()
p = Priority(-7)
seen = {"before": sorted(nice_of(t) for t in tasks())}
p.acquire()
p.acquire()  # a second session
late = threading.Thread(target=worker); late.start()  # started while raised
seen["raised"] = sorted(nice_of(t) for t in tasks())
p.release()
seen["one_left"] = sorted(nice_of(t) for t in tasks())
p.release()
seen["after"] = sorted(nice_of(t) for t in tasks())
p.release()  # one too many: nothing happens
seen["refused"] = p.refused
hold.set(); early.join(); late.join()
print(json.dumps(seen))
"""


def run(**env: str) -> tuple[dict[str, object], str]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout), proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering a nice value needs root (CI is root)")
def test_every_thread_raised_while_a_session_runs_and_restored_after() -> None:
    seen, err = run()
    assert seen == {
        "before": [0, 0],
        "raised": [-7, -7, -7],
        "one_left": [-7, -7, -7],
        "after": [0, 0, 0],
        "refused": False,
    }
    assert err == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="the child becomes nobody, which needs root")
def test_without_root_it_says_so_and_runs_as_it_was() -> None:
    seen, err = run(AS_NOBODY="1")
    assert seen == {
        "before": [0, 0],
        "raised": [0, 0, 0],
        "one_left": [0, 0, 0],
        "after": [0, 0, 0],
        "refused": True,
    }
    assert "could not raise its priority to nice -7 (it needs root)" in err
