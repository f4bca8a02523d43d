"""Verifying an image version in the background: reading back every chunk of a large
image takes minutes, longer than a browser should wait on one request.  The image
library's own ``appliance.store.verify.verify`` does the work; this keeps its status."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from appliance.errors import SlateError
from appliance.store.verify import verify
from appliance.timestamps import utc_now


class Verifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[tuple[str, str], dict[str, Any]] = {}

    def status(self, name: str, version: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._status.get((name, version))
            return dict(found) if found else None

    def start(self, store: Any, name: str, version: str) -> dict[str, Any]:
        """Start verifying (unless it already runs); returns the status."""
        store.load(name, version)  # NotFound now, not in the thread
        key = (name, version)
        with self._lock:
            current = self._status.get(key)
            if current and current["state"] == "running":
                return dict(current)
            self._status[key] = {"state": "running", "done": 0, "total": 0, "damaged": []}
        thread = threading.Thread(
            target=self._run, args=(store, key), name=f"verify-{name}", daemon=True
        )
        thread.start()
        return self.status(name, version) or {}

    def _update(self, key: tuple[str, str], **changes: Any) -> None:
        with self._lock:
            self._status[key].update(changes)

    def _progress(self, key: tuple[str, str]) -> Callable[[int], Callable[[int], None]]:
        def begin(total: int) -> Callable[[int], None]:
            self._update(key, total=total)

            def advance(n: int) -> None:
                with self._lock:
                    self._status[key]["done"] += n

            return advance

        return begin

    def _run(self, store: Any, key: tuple[str, str]) -> None:
        try:
            result = verify(store, *key, progress=self._progress(key))
        except SlateError as exc:
            self._update(key, state="error", message=exc.message, finished_at=_now())
            return
        except Exception as exc:  # keep the console's status honest about a bug
            self._update(key, state="error", message=f"{type(exc).__name__}: {exc}")
            return
        self._update(
            key,
            state="ok" if not result.damaged else "damaged",
            chunks=result.chunks,
            damaged=sorted(result.damaged),
            finished_at=_now(),
        )


def _now() -> str:
    return utc_now()
