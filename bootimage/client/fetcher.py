"""Pipelined chunk downloads: every worker's request goes out at once on one keep-alive
connection (HTTP/1.1 pipelining), and one receiver thread reads the answers in order
straight into the asking worker's own buffer.

Why: with one request per connection at a time, each chunk costs a round trip of idle
link, and several connections in parallel make TCP flows fight over a shaped link.
One busy flow is what ``curl`` of a single file gets, and what the link is for.

Trouble on the connection (reset, timeout, the appliance restarting) drops it; the
requests still unanswered are sent again on a new one, the one cut off midway with
``Range`` for the bytes that are missing.  The retry policy (backoff, giving up after
``give_up_after`` seconds without success) is :class:`~bootimage.client.api.Api`'s.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from io import BufferedReader
from typing import Protocol

from appliance.errors import PeerError, SlateError
from bootimage.client.answers import RETRY_STATUS, TIMEOUT, answer_error


class Channel(Protocol):
    """What the fetcher needs of the client API (:class:`bootimage.client.api.Api`):
    where the store is, the job's token, and its retry bookkeeping."""

    store_host: str
    store_port: int
    token: str

    def back_off(self, method: str, path: str, problem: str, delay: float) -> None: ...

    def succeeded(self, n: int) -> None: ...


MAX_HEAD = 64 * 1024  # status line and headers of one answer


class _Broken(Exception):
    """The connection failed; the unanswered requests are sent again."""


class _Closed(_Broken):
    """The appliance closed the connection where an answer should begin."""


class _Idle(_Broken):
    """The appliance closed a kept-alive connection before answering (its idle
    timeout, e.g. while the client compared chunks for a while): reconnect at once."""


@dataclass
class Ticket:
    """One chunk asked for: the answer lands in ``buf[:filled]`` of the asking thread."""

    path: str
    buf: bytearray
    filled: int = 0
    sent_from: int = 0  # the Range start of the request on the wire
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Fetcher:
    """Chunk downloads pipelined over ``lanes`` connections; each request goes to the
    lane with the fewest unanswered ones, so while the appliance looks up one request
    the other lane's answer keeps the link busy."""

    def __init__(self, api: Channel, lanes: int = 2) -> None:
        self._lanes = [_Lane(api, i) for i in range(max(1, lanes))]
        self._local = threading.local()

    def fetch(self, path: str) -> memoryview:
        """The body of ``GET path`` (a chunk): a view of this thread's buffer, valid
        until this thread fetches again."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(4 * 1024 * 1024 + 64 * 1024)
        ticket = Ticket(path, buf)
        min(self._lanes, key=_Lane.load).send(ticket)
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        self._local.buf = ticket.buf  # it may have grown
        return memoryview(ticket.buf)[: ticket.filled]

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()


class _Lane:
    """One keep-alive connection, its unanswered requests in order, and the thread
    that reads their answers."""

    def __init__(self, api: Channel, number: int) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._queue: deque[Ticket] = deque()  # sent (or to be sent), not yet answered
        self._wake = threading.Condition(self._lock)
        self._sock: socket.socket | None = None
        self._rfile: BufferedReader | None = None
        self._closed = False
        self._answered = 0  # answers read on the current connection
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"fetcher-{number}", daemon=True
        )
        self._thread.start()

    def load(self) -> int:
        return len(self._queue)

    def send(self, ticket: Ticket) -> None:
        with self._lock:
            if self._closed:
                raise SlateError("the chunk fetcher is closed")
            self._queue.append(ticket)
            if self._sock is not None:
                try:
                    self._sock.sendall(self._request(ticket))
                except OSError:
                    # The receiver sees the connection end and sends the queue again on
                    # a new one; only it closes its reader (closing it under a read
                    # would fail a request with "I/O on a closed file").
                    self._shutdown_locked()
            self._wake.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._shutdown_locked()
            for t in self._queue:
                t.error = SlateError("the chunk fetcher was closed")
                t.done.set()
            self._queue.clear()
            self._wake.notify_all()
        self._thread.join(timeout=5)
        with self._lock:
            self._break_locked()

    # -- the connection --------------------------------------------------------------------
    def _request(self, t: Ticket) -> bytes:
        t.sent_from = t.filled
        lines = [
            f"GET {t.path} HTTP/1.1",
            f"Host: {self.api.store_host}:{self.api.store_port}",
            f"Authorization: Bearer {self.api.token}",
        ]
        if t.filled:
            lines.append(f"Range: bytes={t.filled}-")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _shutdown_locked(self) -> None:
        """End the connection from any thread: a blocked read returns at once."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _break_locked(self) -> None:
        """Close the reader and the socket (the receiver thread, or after it ended)."""
        if self._rfile is not None:
            self._rfile.close()
            self._rfile = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None

    def _connect(self) -> BufferedReader:
        sock = socket.create_connection((self.api.store_host, self.api.store_port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._closed:
                sock.close()
                raise _Broken("closed")
            self._sock = sock
            self._rfile = rfile = sock.makefile("rb", buffering=256 * 1024)  # type: ignore[assignment]
            self._answered = 0
            sock.sendall(b"".join(self._request(t) for t in self._queue))
            return rfile  # type: ignore[return-value]

    def _receive_loop(self) -> None:
        delay = 0.5
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                rfile = self._rfile
            try:
                if self._answer_one(rfile or self._connect()):
                    delay = 0.5
                    continue
                problem = ""  # the appliance closed the connection after an answer
            except _Idle:
                problem = ""
            except (OSError, _Broken) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # an answer we cannot read: the oldest request fails
                with self._lock:
                    self._break_locked()
                    if self._queue:
                        oldest = self._queue.popleft()
                        oldest.error = exc
                        oldest.done.set()
                continue
            with self._lock:
                self._break_locked()
                head = self._queue[0] if self._queue and not self._closed else None
            if head is None or not problem:
                continue
            try:
                self.api.back_off("GET", head.path, problem, delay)
            except SlateError as exc:  # unreachable for too long: everyone waiting fails
                with self._lock:
                    for t in self._queue:
                        t.error = exc
                        t.done.set()
                    self._queue.clear()
            delay = min(delay * 2, 10.0)

    def _answer_one(self, rfile: BufferedReader) -> bool:
        """Read the answer to the oldest request; False when the appliance closes the
        connection after it."""
        with self._lock:
            if not self._queue or self._closed:
                return True
            t = self._queue[0]
        try:
            status, headers = _read_head(rfile)
        except (_Closed, ConnectionResetError) as exc:
            if self._answered:  # a kept-alive connection the appliance let go
                raise _Idle(str(exc)) from exc
            raise
        self._answered += 1
        length = headers.get("content-length")
        if status in (200, 206) and length is not None:
            if status == 206 and _range_start(headers.get("content-range")) != t.sent_from:
                t.filled = 0  # not the part asked for: ask again for the whole body
                raise _Broken("the appliance answered a different range")
            if status == 200:
                t.filled = 0
            _read_body_into(rfile, t, int(length))
            self.api.succeeded(int(length))
            self._finish(t, None)
        else:
            body = _read_body(rfile, headers)
            if status == 416 and t.filled:
                t.filled = 0  # our partial copy disagrees: ask again for all of it
                with self._lock:
                    if self._sock is not None:
                        self._sock.sendall(self._request(t))
                    # the re-sent request is answered after the ones already on the wire
                    self._queue.rotate(-1)
                return headers.get("connection", "").lower() != "close"
            if status in RETRY_STATUS:
                raise _Broken(f"HTTP {status}")
            if status in (200, 206):
                error: SlateError = PeerError(f"GET {t.path}: the answer has no Content-Length")
            else:
                error = answer_error("GET", t.path, status, body)
            self._finish(t, error)
        return headers.get("connection", "").lower() != "close"

    def _finish(self, t: Ticket, error: BaseException | None) -> None:
        with self._lock:
            if self._queue and self._queue[0] is t:
                self._queue.popleft()
        t.error = error
        t.done.set()


def _range_start(value: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes A-B/N`` answer."""
    try:
        unit, rest = (value or "").split(" ", 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _read_head(rfile: BufferedReader) -> tuple[int, dict[str, str]]:
    readline = rfile.readline
    line = readline(MAX_HEAD)
    if not line:
        raise _Closed("the appliance closed the connection")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise _Broken(f"not an HTTP answer: {line[:60]!r}")
    headers: dict[str, str] = {}
    size = len(line)
    while True:
        line = readline(MAX_HEAD)
        size += len(line)
        if not line or size > MAX_HEAD:
            raise _Broken("the answer's headers were cut off or too long")
        if line in (b"\r\n", b"\n"):
            return int(parts[1]), headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def _read_body_into(rfile: BufferedReader, t: Ticket, length: int) -> None:
    end = t.filled + length
    if len(t.buf) < end:
        bigger = bytearray(end)
        bigger[: t.filled] = t.buf[: t.filled]
        t.buf = bigger
    readinto = rfile.readinto
    with memoryview(t.buf) as view:
        while t.filled < end:
            n = readinto(view[t.filled : end])
            if not n:
                raise _Broken(f"the answer was cut off after {t.filled} bytes")
            t.filled += n  # kept on failure: the request is sent again with Range


def _read_body(rfile: BufferedReader, headers: dict[str, str]) -> bytes:
    """The (small) body of an answer that is not a chunk: an error message."""
    read, readline = rfile.read, rfile.readline
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int(readline(MAX_HEAD).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while readline(MAX_HEAD) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(read(size))
            readline(MAX_HEAD)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > 1024 * 1024:
            raise PeerError(f"an error answer of {length} bytes is too long")
        return bytes(read(length))
    raise _Broken("an answer without a length")
