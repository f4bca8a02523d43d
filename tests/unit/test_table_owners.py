"""One owner per table, for the tables that docs/architecture.md ("Who owns which table")
listed with other readers: SQL on each appears only under its owner and the schema
(appliance/db/); the other modules read through the owner's queries.

Like test_jobs_owner.py and test_machines_owner.py, a ``git grep`` of the repository; the
patterns are written with ``[ ]`` or groups so that this file does not match them itself.
Unlike those, tests are left out: they may stage and read these tables with raw SQL.
"""

from __future__ import annotations

from owner_kit import grep, outside

TESTS = ("tests/",)

# table → the paths where SQL on it may appear
OWNERS: dict[str, tuple[str, ...]] = {
    "job_log": ("appliance/jobs/", "appliance/db/"),
    "rooms": ("appliance/machines/", "appliance/db/"),
    "host_facts": ("appliance/machines/", "appliance/db/"),
    # and the job queries that find a host's rows through jobs.host (see below)
    "disk_health": ("appliance/machines/", "appliance/jobs/queries.py", "appliance/db/"),
    "power_polls": ("appliance/machines/", "appliance/jobs/queries.py", "appliance/db/"),
    "power_requests": ("appliance/machines/", "appliance/jobs/queries.py", "appliance/db/"),
    "versions": ("appliance/store/index.py", "appliance/db/"),
    "schedules": ("appliance/backups/schedules.py", "appliance/db/"),
    "leases": ("appliance/dhcp/leases.py", "appliance/db/"),
    "notify_outbox": ("appliance/notify/outbox.py", "appliance/db/"),
    "libraries": ("appliance/district/libraries.py", "appliance/db/"),
}

# The readers the page listed, which now call their table's owner.
MOVED = [
    ("job_log", "appliance/http/client_api.py"),
    ("rooms", "appliance/backups/prune.py"),
    ("versions", "webui/library.py"),
    ("schedules", "appliance/backups/prune.py"),
    ("leases", "appliance/machines/timeline.py"),
    ("leases", "appliance/server.py"),
    ("notify_outbox", "appliance/metrics.py"),
]

# What the any-case grep finds outside the owners that is prose, not SQL: (path, text).
PROSE = [
    ("README.md", "machines into rooms, and start and watch reimaging."),
    ("appliance/dns.py", "addresses from leases and reservations"),
]


def _sql(table: str) -> list[str]:
    patterns = (rf"{word}[ ]{table}\b" for word in ("FROM", "JOIN", "UPDATE", "INTO"))
    return grep(*patterns, exclude=TESTS)


def _files(hits: list[str]) -> set[str]:
    return {h.split(":", 1)[0] for h in hits}


def _nonempty(strays: dict[str, list[str]]) -> dict[str, list[str]]:
    """``strays`` without the tables that have none: {} when all is well."""
    return {table: hits for table, hits in strays.items() if hits}


def test_sql_on_each_table_appears_only_under_its_owner_and_the_schema() -> None:
    assert _nonempty({t: outside(_sql(t), owners) for t, owners in OWNERS.items()}) == {}


def test_the_grep_finds_the_owners_own_statements() -> None:
    # the grep itself works: it finds what the owner and the migrations do on each table
    found = {table: _files(_sql(table)) for table in OWNERS}
    assert "appliance/jobs/service.py" in found["job_log"]
    assert "appliance/machines/inventory.py" in found["rooms"]
    assert "appliance/machines/queries.py" in found["rooms"]
    for table in ("host_facts", "disk_health"):
        assert "appliance/machines/facts.py" in found[table], table
    for table in ("power_polls", "power_requests"):
        assert "appliance/machines/power.py" in found[table], table
    assert "appliance/store/index.py" in found["versions"]
    assert "appliance/backups/schedules.py" in found["schedules"]
    assert "appliance/dhcp/leases.py" in found["leases"]
    assert "appliance/notify/outbox.py" in found["notify_outbox"]
    assert any(f.startswith("appliance/db/migrations/") for f in found["versions"])
    # and what the tests do, when they are not left out
    assert any(h.startswith("tests/unit/") for h in grep(r"FROM[ ]leases\b"))


def test_the_readers_the_page_listed_have_no_sql_on_the_table_any_more() -> None:
    assert [(t, reader) for t, reader in MOVED if reader in _files(_sql(t))] == []


def test_a_hosts_facts_by_job_are_joined_to_jobs_only_in_the_job_queries() -> None:
    # disk_health, power_polls and power_requests rows are keyed by job: "the newest of
    # host MAC" joins jobs, and SQL on jobs lives only in appliance/jobs/.  One read each
    # (last_disk_health_job, last_power_poll, last_power_request), called by facts.py
    # and power.py.
    for table in ("disk_health", "power_polls", "power_requests"):
        hits = [h for h in _sql(table) if h.startswith("appliance/jobs/")]
        assert _files(hits) == {"appliance/jobs/queries.py"}, table
        assert len(hits) == 1, hits
    assert [h for h in _sql("host_facts") if h.startswith("appliance/jobs/")] == []


def _prose(hit: str) -> bool:
    return any(hit.startswith(f"{path}:") and text in hit for path, text in PROSE)


def test_no_lower_case_sql_on_the_tables_elsewhere() -> None:
    def strays(table: str) -> list[str]:
        any_case = rf"\b(from|update|into|join)[[:space:]]+{table}\b"
        hits = grep(any_case, ignore_case=True, exclude=TESTS)
        return [h for h in outside(hits, OWNERS[table]) if not _prose(h)]

    assert _nonempty({t: strays(t) for t in OWNERS}) == {}


def test_no_sql_on_the_tables_split_over_two_string_literals_elsewhere() -> None:
    # "SELECT ... FROM" at a line's end, then " leases WHERE ..." on the next.
    def strays(table: str) -> list[str]:
        second = rf"^[[:space:]]*f?[\"'][[:space:]]+{table}([[:space:]]|[\"'(]|$)"
        return outside(grep(second, exclude=TESTS), OWNERS[table])

    assert _nonempty({t: strays(t) for t in OWNERS}) == {}
