"""The boot decision is a pure function: every case of (machine, facts) → spec."""

from __future__ import annotations

import pytest

from appliance.boot.decide import BootSpec, HostFacts, JobFacts, Machine, decide

M = Machine(mac="aa:bb:cc:00:00:01", firmware="uefi", arch=7, ip="10.0.0.5")
JOB = JobFacts(7, "restore", "t" * 64)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("silent", None),
        ("local", BootSpec("local", M.mac)),
        ("register", BootSpec("register", M.mac)),
    ],
)
def test_unknown_machine_by_policy(policy, expected):
    assert decide(M, HostFacts(known=False, unknown_policy=policy)) == expected


def test_unknown_machine_never_gets_the_restore_environment():
    # Even if stale facts carried a job, an unknown machine is never written to.
    for policy in ("silent", "local", "register"):
        spec = decide(M, HostFacts(known=False, job=JOB, auto_restore="x", unknown_policy=policy))
        assert spec is None or spec.kind in ("local", "register")


def test_known_host_with_job_boots_the_environment():
    spec = decide(M, HostFacts(known=True, name="pc1", job=JOB))
    assert spec == BootSpec("env", M.mac, "pc1", job=JOB)


@pytest.mark.parametrize("action", ["capture", "register", "wipe"])
def test_other_actions_boot_the_environment(action):
    job = JobFacts(3, action, "x" * 64)
    assert decide(M, HostFacts(known=True, name="pc1", job=job)).kind == "env"


def test_known_host_without_job_boots_local():
    assert decide(M, HostFacts(known=True, name="pc1")) == BootSpec("local", M.mac, "pc1")


def test_standing_rule_asks_for_a_job():
    spec = decide(M, HostFacts(known=True, name="pc1", auto_restore="win11"))
    assert spec == BootSpec("auto-restore", M.mac, "pc1", image="win11")


def test_standing_rule_lets_a_fresh_restore_boot():
    facts = HostFacts(known=True, name="pc1", auto_restore="win11", fresh_restore=True)
    assert decide(M, facts).kind == "local"


def test_job_wins_over_standing_rule():
    facts = HostFacts(known=True, name="pc1", job=JOB, auto_restore="win11")
    assert decide(M, facts).kind == "env"
