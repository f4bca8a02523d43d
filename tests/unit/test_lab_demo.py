"""`slate demo`'s own pieces: the console port it picks and the progress lines."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from appliance.cli import demo


def test_console_port_falls_back_when_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        port = demo._free_port(taken)
    assert port != taken and port > 0


def _job(**kw: object) -> SimpleNamespace:
    base = dict(id=1, host_name="demo-bios", state="running", phase="restore",
                bytes_done=256 << 20, bytes_total=1 << 30, rate=32 << 20)  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


def test_progress_lines_show_state_percent_and_rate(capsys: pytest.CaptureFixture[str]) -> None:
    printer = demo._ProgressPrinter()
    printer(_job())
    printer(_job(bytes_done=300 << 20))  # same state and phase within 5 s: quiet
    printer(_job(state="done", phase="finishing", bytes_done=1 << 30))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "demo-bios" in lines[0] and "running" in lines[0] and "25.0%" in lines[0]
    assert "32.0 MiB/s" in lines[0]
    assert "done" in lines[1] and "100.0%" in lines[1]


def test_demo_machines_are_one_bios_and_one_uefi_with_fixed_macs() -> None:
    assert sorted(fw for _, fw, _ in demo.MACHINES) == ["bios", "uefi"]
    assert len({mac for *_, mac in demo.MACHINES}) == 2
