"""appliance/jobs/ is the only owner of the ``jobs`` table: no SQL on it elsewhere.

The same ``git grep`` as issue 26 asks for, run in the repository.  The patterns are
written with ``[ ]`` so that this file does not match them itself.  Tests count as
elsewhere: they stage and read job rows through ``appliance/jobs/testing.py``.
"""

from __future__ import annotations

from owner_kit import grep, outside

OWNERS = ("appliance/jobs/", "appliance/db/")


def _outside(hits: list[str]) -> list[str]:
    return outside(hits, OWNERS)


def test_the_issue_grep_finds_sql_on_jobs_only_in_its_package_and_migrations() -> None:
    hits = grep("FROM[ ]jobs", "UPDATE[ ]jobs", "INTO[ ]jobs", "JOIN[ ]jobs")
    assert _outside(hits) == []
    # and it does find the package's own statements: the grep itself works
    assert any(h.startswith("appliance/jobs/service.py:") for h in hits)
    assert any(h.startswith("appliance/jobs/queries.py:") for h in hits)
    assert any(h.startswith("appliance/db/migrations/") for h in hits)


def test_no_lower_case_or_aliased_sql_on_jobs_elsewhere() -> None:
    hits = grep(
        r"\b(from|update|into|join)[[:space:]]+jobs\b",  # any case: "from jobs", "Join  jobs"
        r"\bjobs[[:space:]]+(as[[:space:]]+)?j\b",  # "jobs j", "jobs AS j"
        ignore_case=True,
    )
    assert _outside(hits) == []


def test_no_sql_on_jobs_split_over_two_string_literals_elsewhere() -> None:
    # "SELECT ... FROM" at a line's end, then " jobs WHERE ..." on the next.
    assert _outside(grep(r"\b(FROM|UPDATE|INTO|JOIN)[[:space:]]*[\"']$")) == []
    assert _outside(grep(r"^[[:space:]]*f?[\"'][[:space:]]+jobs([[:space:]]|[\"'(]|$)")) == []


def test_the_active_states_are_listed_only_in_the_states_module() -> None:
    # pending, booting, running, verifying: written out once, as SQL or as Python
    hits = grep(
        r"pending['\"],[[:space:]]*['\"]booting['\"],[[:space:]]*['\"]running['\"],"
        r"[[:space:]]*['\"]verifying"
    )
    assert {h.split(":", 1)[0] for h in hits if ".py:" in h} == {"appliance/jobs/states.py"}
