"""The lab's bookkeeping: processes known by PID + start time, the state file, the
loopback forwarder's relay."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance.errors import NotFound
from appliance.lab import forward, harness
from appliance.lab.harness import Proc


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_proc_stops_only_the_process_it_started() -> None:
    popen = _sleeper()
    try:
        proc = Proc.of("sleeper", popen.pid)
        assert proc.alive()
        impostor = Proc("sleeper", popen.pid, proc.started + 1)  # same PID, reused
        impostor.stop()
        assert popen.poll() is None, "a process with another start time must be left alone"
        proc.stop()
        assert not proc.alive()
        assert popen.poll() is not None
    finally:
        popen.kill()
        popen.wait()


def test_state_file_round_trip_and_down(tmp_path: Path) -> None:
    popen = _sleeper()
    try:
        state = {
            "prefix": "slt",
            "namespaces": ["slt-does-not-exist"],
            "procs": [vars(Proc.of("serve", popen.pid))],
            "machines": [],
            "console": None,
        }
        path = harness.save_state(tmp_path, state)
        assert path.stat().st_mode & 0o077 == 0, "the state file carries the console login"
        status = harness.status_from_state(tmp_path)
        assert status["procs"][0]["alive"] is True
        assert status["namespaces_present"] == {"slt-does-not-exist": False}
        lines = harness.stop_from_state(tmp_path)
        assert lines == [f"stopped serve (pid {popen.pid})"]
        assert popen.poll() is not None
        assert not (tmp_path / harness.STATE_FILE).exists()
    finally:
        popen.kill()
        popen.wait()


def test_no_state_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        harness.status_from_state(tmp_path)
    assert err.value.hint and "slate lab up" in err.value.hint


def test_relay_passes_bytes_both_ways() -> None:
    echo = forward.listen(("127.0.0.1", 0))

    def serve_echo() -> None:
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data.upper())

    threading.Thread(target=serve_echo, daemon=True).start()
    front = forward.listen(("127.0.0.1", 0))
    threading.Thread(target=forward.relay, args=(front, echo.getsockname()), daemon=True).start()
    with socket.create_connection(front.getsockname(), timeout=5) as c:
        c.sendall(b"hello lab")
        c.shutdown(socket.SHUT_WR)
        got = b""
        while data := c.recv(4096):
            got += data
    assert got == b"HELLO LAB"


def test_serve_runs_inside_the_lab_on_its_own_address(tmp_path: Path) -> None:
    run = harness.LabRun(tmp_path / "home", tmp_path / "work")
    argv = run.serve_argv()
    assert argv[argv.index("--interface") + 1] == "eth0"
    assert argv[argv.index("--address") + 1] == harness.SERVER_IP
    assert argv[argv.index("--dhcp") + 1] == "full"
