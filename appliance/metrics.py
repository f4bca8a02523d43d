"""``/metrics``: the appliance in Prometheus text format (exposition format 0.0.4).

Gauges read from the database and the roomcast status files at scrape time (jobs by
state, roomcast sessions and bytes sent, the notification outbox), and process-wide
counters that the services bump (:func:`count`): HTTP bytes served, DHCP packets, TFTP
requests.  Counters start at zero with each ``slate serve``, as Prometheus expects.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from appliance.jobs import queries
from appliance.jobs.states import STATES
from appliance.notify.outbox import count_by_state as outbox_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_lock = threading.Lock()
_counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

# name → (help, labels it may carry); only these may be counted.
COUNTERS: dict[str, str] = {
    "slate_http_bytes_served_total": "Bytes of chunks and boot files sent over HTTP.",
    "slate_dhcp_packets_total": "DHCP packets received, by what was done with them.",
    "slate_tftp_requests_total": "TFTP read requests, by result.",
    "slate_chunk_cache_requests_total": "Chunks roomcast's frame cache was asked for, by hit/miss.",
}


_sources: dict[str, tuple[str, Callable[[], Mapping[str, int]]]] = {}


def source(name: str, label: str, read: Callable[[], Mapping[str, int]]) -> None:
    """Counter ``name`` is read from a service's own tally at scrape time, one sample per
    key as ``label`` (``slate serve`` registers the DHCP server's ``stats`` this way)."""
    if name not in COUNTERS:
        raise KeyError(name)
    _sources[name] = (label, read)


def count(name: str, n: int = 1, **labels: str) -> None:
    """Add ``n`` to counter ``name`` (one of :data:`COUNTERS`) with ``labels``."""
    if name not in COUNTERS:
        raise KeyError(name)
    with _lock:
        _counters[(name, tuple(sorted(labels.items())))] += n


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    pairs = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels)
    return f"{name}{{{pairs}}} {value:g}" if pairs else f"{name} {value:g}"


def _family(name: str, kind: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(conn: sqlite3.Connection, home: Path) -> str:
    from appliance.roomcast import read_status

    lines: list[str] = []
    by_state = dict.fromkeys(STATES, 0)
    for state, n in queries.count_by_state(conn):
        by_state[state] = n
    jobs = [_sample("slate_jobs", [("state", s)], n) for s, n in by_state.items()]
    lines += _family("slate_jobs", "gauge", "Jobs in the database, by state.", jobs)
    outbox = dict.fromkeys(("pending", "sent", "gave-up"), 0)
    for state, n in outbox_counts(conn):
        outbox[state] = n
    queued = [_sample("slate_notifications", [("state", s)], n) for s, n in outbox.items()]
    lines += _family("slate_notifications", "gauge", "Notifications by state.", queued)
    sessions = read_status(home)
    lines += _family("slate_roomcast_sessions", "gauge", "Roomcast sessions reporting now.",
                     [_sample("slate_roomcast_sessions", [], len(sessions))])  # fmt: skip
    sent = [
        _sample("slate_roomcast_sent_bytes", [("session", f"{int(s['session']):08x}")],
                float(s.get("sent_bytes", 0)))
        for s in sessions
    ]  # fmt: skip
    lines += _family("slate_roomcast_sent_bytes", "gauge",
                     "Bytes multicast by each reporting roomcast session.", sent)  # fmt: skip
    return "\n".join(lines) + "\n" + render_counters()


def render_counters() -> str:
    """The process-wide counters alone (what the services bumped since start)."""
    lines: list[str] = []
    with _lock:
        counted = sorted(_counters.items())
    for name, (label, read) in list(_sources.items()):
        counted += [((name, ((label, k),)), v) for k, v in sorted(dict(read()).items())]
    for name, help_text in COUNTERS.items():
        samples = [_sample(name, labels, v) for (n, labels), v in counted if n == name]
        family = name.removesuffix("_total")
        lines += _family(family, "counter", help_text, samples or [_sample(name, [], 0)])
    return "\n".join(lines) + "\n"
