"""Progress for the technician: posted to the appliance every second (phase, bytes
done/total, rate, ETA), drawn as a bar on the machine's own console, and log lines
forwarded in batches.  A background thread does the posting so a slow or absent
appliance never stalls the copy."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from typing import TextIO

from appliance.errors import SlateError
from bootimage.client.api import Api

INTERVAL = 1.0  # the appliance wants news at least every 2 s


class Tee:
    """Write to several consoles: the kernel's /dev/console is only the *last*
    ``console=`` of the command line (``console=ttyS0,115200 console=tty0`` → the
    screen), but a technician may be watching the serial port as well."""

    def __init__(self, streams: list[TextIO]) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            with contextlib.suppress(OSError):
                stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(OSError):
                stream.flush()


def console_streams(cmdline: str, primary: TextIO) -> TextIO:
    """``primary`` plus every other ``console=`` device of the kernel command line."""
    names = [w.split("=", 1)[1].split(",")[0] for w in cmdline.split() if w.startswith("console=")]
    extra: list[TextIO] = []
    for name in dict.fromkeys(names[:-1]):  # the last one is /dev/console itself
        try:
            extra.append(open(f"/dev/{name}", "w", encoding="utf-8", errors="replace"))  # noqa: SIM115
        except OSError:
            continue
    return Tee([primary, *extra]) if extra else primary  # type: ignore[return-value]


class Reporter:
    def __init__(
        self, api: Api | None, *, console: bool = True, stream: TextIO | None = None
    ) -> None:
        self.api = api
        # Another request carries the progress (a roomcast seat's report): the thread
        # posts only log lines meanwhile.
        self.carried = False
        self.console = console
        self.stream = stream or sys.stderr
        self.phase = "starting"
        self.done = 0
        self.total = 0
        self._samples: deque[tuple[float, int]] = deque(maxlen=10)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    # -- what the engines call --------------------------------------------------------
    def start_phase(self, phase: str, total: int) -> None:
        with self._lock:
            self.phase, self.total, self.done = phase, total, 0
            self._samples.clear()

    def set_phase(self, phase: str) -> None:
        """A new phase that keeps the byte counts (e.g. "finishing" after "restore")."""
        with self._lock:
            self.phase = phase

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        with self._lock:
            self._lines.append(line)
        self.stream.write(("\r\033[K" if self.console else "") + line + "\n")
        self.stream.flush()

    # -- the background thread --------------------------------------------------------
    def start(self) -> Reporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread and send what is left; a second stop sends only new log lines
        (the progress was sent by the first: one request less at every client's end)."""
        first = not self._stop.is_set()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush(progress=first)

    def detach(self) -> None:
        """The job has ended on the appliance (done or failed), which takes no more of its
        log or progress: from here lines go to the console only (each post would be a
        request refused with 409 at every client's end)."""
        self.api = None

    def snapshot(self) -> dict[str, float | int | str | None]:
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, self.done))
            first_t, first_done = self._samples[0]
            rate = (self.done - first_done) / (now - first_t) if now > first_t else 0.0
            left = max(self.total - self.done, 0)
            eta = left / rate if rate > 0 else None
            return {
                "phase": self.phase,
                "done": self.done,
                "total": self.total,
                "rate": round(rate, 1),
                "eta": None if eta is None else round(eta, 1),
            }

    def flush(self, progress: bool = True) -> None:
        """Send progress and pending log lines now (one attempt each: never blocks long)."""
        snap = self.snapshot()
        if self.console:
            self._draw(snap)
        if self.api is None:
            return
        with self._lock:
            lines, self._lines = self._lines[:500], self._lines[500:]
        try:
            if lines:
                self.api.post_json("/log", {"lines": lines}, retry=False)
            if progress:
                self.api.post_json("/progress", snap, retry=False)
        except SlateError:
            with self._lock:  # keep the lines for the next round
                self._lines[:0] = lines

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.flush(progress=not self.carried)

    def _draw(self, snap: dict[str, float | int | str | None]) -> None:
        total = int(snap["total"] or 0)
        done = int(snap["done"] or 0)
        frac = min(done / total, 1.0) if total else 0.0
        bar = "#" * int(frac * 30)
        rate = float(snap["rate"] or 0)
        eta = snap["eta"]
        eta_text = f"{int(eta) // 60}:{int(eta) % 60:02d}" if isinstance(eta, float) else "--:--"
        self.stream.write(
            f"\r\033[K{snap['phase']:<10} [{bar:<30}] {frac * 100:5.1f}% "
            f"{done / 2**20:,.0f}/{total / 2**20:,.0f} MiB {rate / 2**20:6.1f} MiB/s ETA {eta_text}"
        )
        self.stream.flush()
