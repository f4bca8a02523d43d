"""Jobs: what a machine must do at its next network boot, and how it went.

This package is the only owner of the ``jobs`` table: no SQL on it lives elsewhere
(``tests/unit/test_jobs_owner.py`` checks).

* :mod:`.service` — :class:`Jobs`, every write (create, move, progress, cancel, ...);
* :mod:`.queries` — the reads other modules need, as functions over a connection;
* :mod:`.states` — the job states, their named sets and the state table;
* :mod:`.scope` — what a job's token may do beyond "be this job";
* :mod:`.tokens` — job tokens (derived from a server secret, never stored);
* :mod:`.when` — job times (``--at`` values).
"""

from __future__ import annotations

from appliance.jobs.queries import images_being_captured, versions_in_use
from appliance.jobs.service import (
    ACTIONS,
    AFTER,
    BOOT_TIMEOUT,
    DEFAULT_GIVE_UP_AFTER,
    STALE_MARGIN,
    TRANSPORTS,
    Job,
    Jobs,
    resolve_image,
    resolve_spec,
)
from appliance.jobs.tokens import load_secret, token_hash
from appliance.jobs.when import parse_when, utc_now
from appliance.machines import parse_disk_hint

__all__ = [
    "ACTIONS",
    "AFTER",
    "BOOT_TIMEOUT",
    "DEFAULT_GIVE_UP_AFTER",
    "STALE_MARGIN",
    "TRANSPORTS",
    "Job",
    "Jobs",
    "images_being_captured",
    "load_secret",
    "parse_disk_hint",
    "parse_when",
    "resolve_image",
    "resolve_spec",
    "token_hash",
    "utc_now",
    "versions_in_use",
]
