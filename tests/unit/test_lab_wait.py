"""The lab's job watcher: a machine that is done may power off while others work;
one that stops while its own job is pending fails the wait at once."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.lab import steps


def _machine(mac: str, *, running: bool) -> Any:
    proc = subprocess.Popen(["sleep", "30"] if running else ["true"])
    if not running:
        proc.wait()
    return SimpleNamespace(name=f"pc-{mac[-2:]}", mac=mac, proc=proc, console=lambda: "")


def _jobs(hosts: dict[int, str]) -> Any:
    return SimpleNamespace(get=lambda jid: SimpleNamespace(host=hosts[jid]))


def test_a_finished_machine_may_power_off_while_another_job_runs() -> None:
    done, busy = (
        _machine("52:54:00:00:00:01", running=False),
        _machine("52:54:00:00:00:02", running=True),
    )
    try:
        steps._check_alive([done, busy], {2}, _jobs({2: busy.mac}))
    finally:
        busy.proc.kill()
        busy.proc.wait()


def test_a_machine_that_stops_with_its_job_pending_fails_the_wait() -> None:
    dead, busy = (
        _machine("52:54:00:00:00:01", running=False),
        _machine("52:54:00:00:00:02", running=True),
    )
    try:
        with pytest.raises(steps.LabStepError, match="pc-01 powered off"):
            steps._check_alive([dead, busy], {1, 2}, _jobs({1: dead.mac, 2: busy.mac}))
    finally:
        busy.proc.kill()
        busy.proc.wait()
