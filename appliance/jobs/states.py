"""The job state table: the only legal moves of a job.

    pending → booting → running → verifying → done
       │         │         │          │
       └─────────┴─────────┴──────────┴──→ failed | cancelled

``booting`` is entered when the machine fetches its boot script, ``running`` when
its client fetches the job, ``verifying`` when every chunk is written.  A failed or
cancelled job may be retried (a new job).  A client that reconnects after a reboot
may re-enter ``running`` from ``running`` or ``verifying`` (resume).
"""

from __future__ import annotations

from appliance.errors import IllegalTransition

STATES = ("pending", "booting", "running", "verifying", "done", "failed", "cancelled")
ACTIVE = frozenset({"pending", "booting", "running", "verifying"})
FINAL = frozenset({"done", "failed", "cancelled"})

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
