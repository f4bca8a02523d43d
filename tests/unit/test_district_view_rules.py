"""The district view's judgement and the bucket's retention, as pure functions (issue 30;
docs/district.md, "The district view" and "Retention in the bucket")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from http_kit import V1 as STORED
from http_kit import write_image

from appliance import db
from appliance.backups.retention import Rules
from appliance.config import Layout
from appliance.district.prune import plan_versions, unneeded_chunks
from appliance.district.status import _jobs, judge
from appliance.jobs import Jobs

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
V1, V2, V3 = "20261201T080000Z", "20261205T080000Z", "20261207T080000Z"


def status(written: str, *versions: tuple[str, str], failures: int = 0) -> dict[str, object]:
    return {
        "hostname": "slate",
        "written_at": written,
        "sync_interval": 300,
        "free_bytes": 10**9,
        "images": {"win11": {"library_newest": V2,
                             "versions": [{"version": v, "state": s} for v, s in versions]}},
        "failures": [{"id": i} for i in range(failures)],
    }  # fmt: skip


def test_a_school_is_behind_when_its_newest_ready_version_is_older_than_the_librarys() -> None:
    statuses = {
        "north": status("2026-12-07T11:58:00Z", (V2, "ready"), (V3, "ready")),
        "south": status("2026-12-07T11:55:01Z", (V2, "ready"), (V3, "fetching"), failures=2),
        "west": status("2026-12-07T11:49:59Z", (V3, "absent")),
        "east": {},
    }
    rows = judge(statuses, {"win11": V3}, NOW)
    assert [(r["school"], r["last_contact"], r["age_seconds"], r["called_in"], r["behind"],
             r["failures"]) for r in rows] == [
        ("east", None, None, False, [], 0),
        ("north", "2026-12-07T11:58:00Z", 120, True, [], 0),
        ("south", "2026-12-07T11:55:01Z", 299, True, ["win11"], 2),
        ("west", "2026-12-07T11:49:59Z", 601, False, ["win11"], 0),
    ]  # fmt: skip
    assert rows[1]["images"] == {"win11": {"ready": V3, "library": V3, "behind": False}}
    assert rows[2]["images"] == {"win11": {"ready": V2, "library": V3, "behind": True}}
    assert rows[3]["images"] == {"win11": {"ready": None, "library": V3, "behind": True}}


def test_has_not_called_in_is_twice_its_own_interval_and_an_unreadable_area_says_why() -> None:
    slow = status("2026-12-07T10:00:01Z", (V3, "ready")) | {"sync_interval": 3600}
    rows = judge({"slow": slow, "locked": {"error": "refused"}}, {"win11": V3}, NOW)
    assert [(r["school"], r["called_in"], r["error"]) for r in rows] == [
        ("locked", False, "refused"),
        ("slow", True, None),
    ]
    # A library that cannot say its newest: the school's own view of it is used.
    rows = judge({"north": status("2026-12-07T11:59:00Z", (V1, "ready"))}, {}, NOW)
    assert rows[0]["images"] == {"win11": {"ready": V1, "library": V2, "behind": True}}


def test_the_bucket_keeps_what_the_rules_keep_and_always_the_newest() -> None:
    found = ["20261201T080000Z", "20261202T080000Z", "20261202T180000Z", "20261203T080000Z"]
    plan = plan_versions(found, Rules(daily=2), tz=UTC)
    assert plan.keep == {"20261203T080000Z": ["daily 2", "newest in the library"],
                         "20261202T180000Z": ["daily 2"]}  # fmt: skip
    assert plan.remove == ["20261201T080000Z", "20261202T080000Z"]
    assert plan_versions(found, Rules(last=0), tz=UTC).keep == {
        "20261203T080000Z": ["newest in the library"]
    }
    assert plan_versions(found, Rules(), tz=UTC).remove == []  # no rule: every version stays
    assert plan_versions([], Rules(last=1)).keep == {}


def test_a_chunk_goes_only_unnamed_and_older_than_the_grace_period() -> None:
    chunks = {
        "aa" * 32: NOW - timedelta(days=10),  # named by a kept manifest
        "bb" * 32: NOW - timedelta(days=10),  # unnamed, old: goes
        "cc" * 32: NOW - timedelta(hours=47),  # unnamed, young: a publish under way
        "dd" * 32: NOW - timedelta(hours=48),  # unnamed, exactly the grace: goes
    }
    assert unneeded_chunks(chunks, {"aa" * 32}, NOW, timedelta(hours=48)) == (
        ["bb" * 32, "dd" * 32],
        1,
    )
    assert unneeded_chunks(chunks, set(), NOW, timedelta(0)) == (sorted(chunks), 0)


def test_versions_of_one_second_are_ordered_by_time_not_as_text() -> None:
    early, late = "20261207T152850Z", "20261207T152850.823856Z"
    assert sorted([early, late]) == [late, early]  # as text: the wrong way round
    rows = judge({"north": status("2026-12-07T11:59:00Z", (early, "ready"))}, {"win11": late}, NOW)
    assert rows[0]["images"] == {"win11": {"ready": early, "library": late, "behind": True}}
    assert plan_versions([late, early], Rules(last=0), tz=UTC).keep == {
        late: ["newest in the library"]
    }


def test_the_status_tells_the_last_restores_and_failures_through_the_jobs_module(
    home: Path,
) -> None:
    layout = Layout(home)
    write_image(layout, "win11", STORED)
    conn = db.connect(layout.db)
    jobs = Jobs(conn, layout)
    for n in range(1, 4):
        jobs.inventory.add_host(f"aa:bb:cc:00:00:0{n}", f"pc{n}", actor="t")
    ok, bad, waiting = (jobs.restore(f"pc{n}", "win11", actor="t") for n in range(1, 4))
    jobs.transition(ok.id, "running")
    jobs.done(ok.id)
    jobs.transition(bad.id, "running")
    jobs.transition(bad.id, "failed", reason="chunk 311 did not verify")
    restores, failures = _jobs(conn, layout)
    assert [(r["id"], r["host"], r["ref"], r["state"]) for r in restores] == [
        (bad.id, "pc2", f"win11@{STORED}", "failed"),
        (ok.id, "pc1", f"win11@{STORED}", "done"),
    ]  # the one not ended is not told
    assert [(r["id"], r["reason"]) for r in failures] == [(bad.id, "chunk 311 did not verify")]
    assert waiting.state == "pending"
