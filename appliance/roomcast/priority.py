"""The appliance's CPU priority while a room session runs.

A session's sender paces its datagrams from a thread of the appliance's process, which it
shares — and shares Python's GIL — with the web console's and the client API's threads.
When the machine is busy, the thread holding the GIL can be descheduled by the kernel, and
the sender waits with it: on the benchmark's 2 cores with 32 seats, sleeps overshot by up
to 0.3 s and the sender lost 0.7-1.1 s of its 13 s, its rate falling to half for a moment
(docs/roomcast.md, "The appliance's priority").  Raising the sender's own thread did not
help — the GIL holder is another thread — so while any session runs, every thread of the
process runs at ``nice`` (default -10), and goes back to where it was when the last one ends.

Lowering a nice value needs root (CAP_SYS_NICE); without it the appliance says so once
and runs as it was.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("slate.roomcast")

DEFAULT_NICE = -10


def tasks() -> list[int]:
    """The thread ids of this process."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [threading.get_native_id()]


def nice_of(tid: int) -> int | None:
    try:
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:  # the thread ended meanwhile
        return None


def _set(tid: int, nice: int) -> bool:
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except ProcessLookupError:  # the thread ended meanwhile
        return True
    except PermissionError:
        return False
    return True


class Priority:
    """Counts the running sessions; the first raises the process, the last restores it."""

    def __init__(self, nice: int = DEFAULT_NICE) -> None:
        self.nice = max(-20, min(19, int(nice)))
        self._lock = threading.Lock()
        self._users = 0
        self._saved: dict[int, int] = {}
        self._kept: set[int] = set()
        self._base = 0
        self.refused = False  # the kernel refused (not root): said once

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1 or self.nice == 0:
                return
            self._base = nice_of(os.getpid()) or 0
            self._saved, self._kept = {}, set()
            for tid in tasks():
                now = nice_of(tid)
                if now is None or now <= self.nice:
                    self._kept.add(tid)  # already at least as high: left alone
                    continue
                if not _set(tid, self.nice):
                    if not self.refused:
                        log.warning(
                            "roomcast: the appliance could not raise its priority to nice %d"
                            " (it needs root); a busy appliance may pace the multicast"
                            " unevenly",
                            self.nice,
                        )
                    self.refused = True
                    break
                self._saved[tid] = now

    def release(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users or not self._saved:
                return
            # Threads started meanwhile inherited the raised value: they go to the base.
            for tid in tasks():
                if tid not in self._kept and nice_of(tid) == self.nice:
                    _set(tid, self._saved.get(tid, self._base))
            self._saved = {}
