"""appliance/machines/ is the only owner of ``hosts`` and ``host_events``: no SQL on them
elsewhere, but for the schema (appliance/db/) and job queries that join ``hosts``
(appliance/jobs/).

The same ``git grep`` as issue 26 asks for, run in the repository.  The patterns are
written with ``[ ]`` or groups so that this file does not match them itself.  Tests
count as elsewhere: they read host rows through ``appliance/machines/testing.py``.
"""

from __future__ import annotations

from owner_kit import grep, outside

OWNERS = ("appliance/machines/", "appliance/jobs/", "appliance/db/")


def _outside(hits: list[str]) -> list[str]:
    return outside(hits, OWNERS)


def _files(hits: list[str], under: str) -> list[str]:
    return sorted({h.split(":", 1)[0] for h in hits if h.startswith(under)})


def test_the_issue_grep_finds_sql_on_hosts_only_in_its_package_and_migrations() -> None:
    hits = grep(
        r"FROM[ ]hosts\b",
        r"JOIN[ ]hosts\b",
        r"UPDATE[ ]hosts\b",
        r"INTO[ ]hosts\b",
        r"FROM[ ]host_events\b",
        r"INTO[ ]host_events\b",
        r"UPDATE[ ]host_events\b",
        r"JOIN[ ]host_events\b",
    )
    assert _outside(hits) == []
    # and it does find the package's own statements: the grep itself works
    assert any(h.startswith("appliance/machines/inventory.py:") for h in hits)
    assert any(h.startswith("appliance/machines/queries.py:") for h in hits)
    assert any(h.startswith("appliance/machines/timeline.py:") for h in hits)
    assert any(h.startswith("appliance/db/migrations/") for h in hits)
    # host_events: written and read by the timeline alone
    events = [h for h in hits if "host_events" in h]
    assert _files(events, "") == ["appliance/machines/timeline.py"]
    # the one exception outside: job queries of appliance/jobs/ that join hosts
    assert _files(hits, "appliance/jobs/") == [
        "appliance/jobs/queries.py",
        "appliance/jobs/service.py",
    ]
    assert all(" jobs j " in h for h in hits if h.startswith("appliance/jobs/"))


def test_no_lower_case_or_aliased_sql_on_hosts_elsewhere() -> None:
    hits = grep(
        # any case: "from hosts", "Join  host_events"
        r"\b(from|update|into|join)[[:space:]]+(hosts|host_events)\b",
        r"\b(hosts|host_events)[[:space:]]+(as[[:space:]]+)?(h|e)\b",  # "hosts h", "hosts AS h"
        ignore_case=True,
    )
    assert _outside(hits) == []


def test_no_sql_on_hosts_split_over_two_string_literals_elsewhere() -> None:
    # "SELECT ... FROM" at a line's end, then " hosts WHERE ..." on the next.
    assert _outside(grep(r"\b(FROM|UPDATE|INTO|JOIN)[[:space:]]*[\"']$")) == []
    second = r"^[[:space:]]*f?[\"'][[:space:]]+(hosts|host_events)([[:space:]]|[\"'(]|$)"
    assert _outside(grep(second)) == []
