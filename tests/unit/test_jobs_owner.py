"""appliance/jobs/ is the only owner of the ``jobs`` table: no SQL on it elsewhere.

The same ``git grep`` as issue 26 asks for, run in the repository.  The patterns are
written with ``[ ]`` so that this file does not match them itself.  ``tests/`` is left
out: tests read and set job rows directly to check and stage what the package does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWNERS = ("appliance/jobs/", "appliance/db/")


def _grep(*patterns: str, ignore_case: bool = False) -> list[str]:
    """``path:line:text`` of every line matching one of ``patterns`` (extended regexps)
    in the files git tracks or would track (new ones too), outside tests/."""
    args = ["git", "grep", "--untracked", "-n", "-E", *(["-i"] if ignore_case else [])]
    for pattern in patterns:
        args += ["-e", pattern]
    args += ["--", ".", ":(exclude)tests/"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: nothing found
    return done.stdout.splitlines()


def _outside(hits: list[str]) -> list[str]:
    return [h for h in hits if not h.startswith(OWNERS)]


@pytest.fixture(autouse=True)
def _in_a_git_checkout() -> None:
    assert shutil.which("git"), "git is needed for this test"
    assert (ROOT / ".git").exists(), f"{ROOT} is not a git checkout"


def test_the_issue_grep_finds_sql_on_jobs_only_in_its_package_and_migrations() -> None:
    hits = _grep("FROM[ ]jobs", "UPDATE[ ]jobs", "INTO[ ]jobs", "JOIN[ ]jobs")
    assert _outside(hits) == []
    # and it does find the package's own statements: the grep itself works
    assert any(h.startswith("appliance/jobs/service.py:") for h in hits)
    assert any(h.startswith("appliance/jobs/queries.py:") for h in hits)
    assert any(h.startswith("appliance/db/migrations/") for h in hits)


def test_no_lower_case_or_aliased_sql_on_jobs_elsewhere() -> None:
    hits = _grep(
        r"\b(from|update|into|join)[[:space:]]+jobs\b",  # any case: "from jobs", "Join  jobs"
        r"\bjobs[[:space:]]+(as[[:space:]]+)?j\b",  # "jobs j", "jobs AS j"
        ignore_case=True,
    )
    assert _outside(hits) == []


def test_no_sql_on_jobs_split_over_two_string_literals_elsewhere() -> None:
    # "SELECT ... FROM" at a line's end, then " jobs WHERE ..." on the next.
    assert _outside(_grep(r"\b(FROM|UPDATE|INTO|JOIN)[[:space:]]*[\"']$")) == []
    assert _outside(_grep(r"^[[:space:]]*f?[\"'][[:space:]]+jobs([[:space:]]|[\"'(]|$)")) == []


def test_the_active_states_are_listed_only_in_the_states_module() -> None:
    # pending, booting, running, verifying: written out once, as SQL or as Python
    hits = _grep(
        r"pending['\"],[[:space:]]*['\"]booting['\"],[[:space:]]*['\"]running['\"],"
        r"[[:space:]]*['\"]verifying"
    )
    assert {h.split(":", 1)[0] for h in hits if ".py:" in h} == {"appliance/jobs/states.py"}
