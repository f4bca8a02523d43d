"""The job state table: the only legal moves of a job.

    pending → booting → running → verifying → done
       │         │         │          │
       └─────────┴─────────┴──────────┴──→ failed | cancelled

``booting`` is entered when the machine fetches its boot script, ``running`` when
its client fetches the job, ``verifying`` when every chunk is written.  A failed or
cancelled job may be retried (a new job).  A client that reconnects after a reboot
may re-enter ``running`` from ``running`` or ``verifying`` (resume).

This module is the only place that names the states: every other module (and every SQL
statement, through :func:`sql_in`) uses the sets below.
"""

from __future__ import annotations

from collections.abc import Iterable

from appliance.errors import IllegalTransition

STATES = ("pending", "booting", "running", "verifying", "done", "failed", "cancelled")
ACTIVE = frozenset({"pending", "booting", "running", "verifying"})
FINAL = frozenset({"done", "failed", "cancelled"})
# Active, and its machine has fetched its boot script: a capture in one of these may be
# uploading, a client that stops reporting in one of these is expired as gone silent.
STARTED = ACTIVE - {"pending"}
# Active, with chunks still to write (``verifying`` begins when every chunk is written):
# the restores that may still join a roomcast session.
UNWRITTEN = ACTIVE - {"verifying"}
# Ended without doing its work: such a job may be retried (as a new job).
RETRYABLE = FINAL - {"done"}
# Not yet called in by its client: the client's first call starts it running.
WAITING = frozenset({"pending", "booting"})
# The states a client may report of itself (POST /state).
CLIENT_SET = ("running", "verifying")
# Ended states that send a notification of their own name.
NOTIFIED = frozenset({"done", "failed"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"booting", "running", "failed", "cancelled"}),
    "booting": frozenset({"booting", "running", "failed", "cancelled"}),
    "running": frozenset({"running", "verifying", "done", "failed", "cancelled"}),
    "verifying": frozenset({"running", "done", "failed", "cancelled"}),
    "done": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}


def check_transition(job_id: int, current: str, new: str) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is in the table."""
    if new not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(
            f"job {job_id} cannot go from {current!r} to {new!r}",
            hint=f"from {current!r} a job may go to: "
            + (", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing (it has ended)"),
        )


def ordered(states: Iterable[str]) -> tuple[str, ...]:
    """``states`` in the order of :data:`STATES` (ValueError for a name not in it)."""
    wanted = frozenset(states)
    unknown = wanted.difference(STATES)
    if unknown:
        raise ValueError(f"not job states: {', '.join(sorted(unknown))}")
    return tuple(s for s in STATES if s in wanted)


def sql_in(states: Iterable[str]) -> str:
    """The SQL list of ``states`` for ``state IN ...``: ``('booting','running')``.  Only
    names of :data:`STATES` (checked) go into it, so it needs no quoting."""
    return "(" + ",".join(f"'{s}'" for s in ordered(states)) + ")"
