"""The pipelined chunk fetcher against a scripted HTTP server on loopback: answers in
order on one connection, a body cut off midway resumed with Range, errors passed
through without losing the other requests, retries, and giving up."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from appliance.errors import NotFound
from bootimage.client.api import Api, Unreachable
from bootimage.client.fetcher import Fetcher

Handler = Callable[["Script", str, dict[str, str]], None]


class Script:
    """A tiny HTTP/1.1 server: each request read off a connection (pipelined ones
    too) goes to ``handler(script, path, headers)``, which answers on ``self.conn``."""

    def __init__(self, handler: Handler, idle: float | None = None) -> None:
        self.handler = handler
        self.idle = idle  # close a connection after this long without a request
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[int, str, dict[str, str]]] = []  # (connection, path, headers)
        self.connections = 0
        self.conn: socket.socket | None = None
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(self.idle)
        rfile = conn.makefile("rb")
        try:
            while True:
                line = rfile.readline()
                if not line:
                    return
                path = line.split()[1].decode()
                headers = {}
                while (h := rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                with self.lock:
                    self.requests.append((number, path, headers))
                    self.conn = conn
                    self.handler(self, path, headers)
        except OSError:
            return
        finally:
            conn.close()

    def send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        assert self.conn is not None
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        self.conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.listener.close()


BODIES = {f"/c/{i}": bytes([i]) * (100_000 + i) for i in range(12)}


def serve_ranges(script: Script, path: str, headers: dict[str, str]) -> None:
    body = BODIES.get(path)
    if body is None:
        script.send(404, json.dumps({"error": "no such chunk", "hint": "h"}).encode())
        return
    start = int(headers.get("range", "bytes=0-")[6:].rstrip("-"))
    if start:
        rng = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
        script.send(206, body[start:], rng)
    else:
        script.send(200, body)


@pytest.fixture
def make():
    made: list[tuple[Script, Fetcher]] = []

    def _make(
        handler: Handler,
        lanes: int = 1,
        give_up_after: float = 30.0,
        idle: float | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ) -> Fetcher:
        script = Script(handler, idle)
        api = Api(f"http://127.0.0.1:{script.port}", "tok", give_up_after=give_up_after, log=log)
        fetcher = Fetcher(api, lanes=lanes)
        made.append((script, fetcher))
        fetcher.script = script  # type: ignore[attr-defined]
        return fetcher

    yield _make
    for script, fetcher in made:
        fetcher.close()
        script.close()


def fetch_bytes(fetcher: Fetcher, path: str) -> bytes:
    return bytes(fetcher.fetch(path))


def fetch_all(fetcher: Fetcher, paths: list[str], workers: int = 6) -> list[bytes]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: bytes(fetcher.fetch(p)), paths))


def test_many_threads_share_one_pipelined_connection(make):
    fetcher = make(serve_ranges)
    paths = list(BODIES) * 3
    assert fetch_all(fetcher, paths) == [BODIES[p] for p in paths]
    script = fetcher.script
    assert script.connections == 1
    assert all(h["authorization"] == "Bearer tok" for _, _, h in script.requests)


def test_two_lanes_both_carry_requests(make):
    fetcher = make(serve_ranges, lanes=2)
    paths = list(BODIES) * 4
    assert fetch_all(fetcher, paths, workers=8) == [BODIES[p] for p in paths]
    assert fetcher.script.connections == 2


def test_body_cut_midway_resumes_with_range(make):
    cut = {"/c/3": True}

    def handler(script: Script, path: str, headers: dict[str, str]) -> None:
        body = BODIES[path]
        if cut.pop(path, False):
            assert script.conn is not None
            script.conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            script.conn.sendall(body[:40_000])
            script.conn.shutdown(socket.SHUT_RDWR)
            return
        serve_ranges(script, path, headers)

    fetcher = make(handler)
    assert bytes(fetcher.fetch("/c/3")) == BODIES["/c/3"]
    ranges = [h.get("range") for _, p, h in fetcher.script.requests if p == "/c/3"]
    assert ranges == [None, "bytes=40000-"]
    assert fetcher.script.connections == 2


def test_wrong_range_answer_starts_over(make):
    def handler(script: Script, path: str, headers: dict[str, str]) -> None:
        body = BODIES[path]
        if "range" in headers:  # claims a different part: the client must not splice it
            script.send(206, body[5:], {"Content-Range": f"bytes 5-{len(body) - 1}/{len(body)}"})
            return
        if len(script.requests) == 1:
            assert script.conn is not None
            script.conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            script.conn.sendall(body[:1000])
            script.conn.shutdown(socket.SHUT_RDWR)
            return
        script.send(200, body)

    fetcher = make(handler)
    assert bytes(fetcher.fetch("/c/1")) == BODIES["/c/1"]


def test_error_answer_raises_and_the_pipeline_goes_on(make):
    fetcher = make(serve_ranges)
    paths = ["/c/1", "/missing", "/c/2", "/c/4"]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(fetch_bytes, fetcher, p) for p in paths]
        with pytest.raises(NotFound, match="no such chunk"):
            futures[1].result()
        assert [f.result() for f in (futures[0], futures[2], futures[3])] == [
            BODIES["/c/1"],
            BODIES["/c/2"],
            BODIES["/c/4"],
        ]
    assert fetcher.script.connections == 1


def test_busy_answer_is_retried(make):
    busy = {"n": 2}

    def handler(script: Script, path: str, headers: dict[str, str]) -> None:
        if busy["n"]:
            busy["n"] -= 1
            script.send(503, b"busy")
            return
        serve_ranges(script, path, headers)

    fetcher = make(handler)
    assert bytes(fetcher.fetch("/c/5")) == BODIES["/c/5"]
    assert len(fetcher.script.requests) == 3


def test_connection_close_after_each_answer(make):
    def handler(script: Script, path: str, headers: dict[str, str]) -> None:
        script.send(200, BODIES[path], {"Connection": "close"})
        assert script.conn is not None
        script.conn.shutdown(socket.SHUT_RDWR)

    fetcher = make(handler)
    paths = list(BODIES)[:5]
    assert fetch_all(fetcher, paths, workers=3) == [BODIES[p] for p in paths]


def test_gives_up_when_the_appliance_stays_away(make):
    fetcher = make(serve_ranges, give_up_after=1.0)
    fetcher.script.close()  # nobody listens any more
    with pytest.raises(Unreachable, match="unreachable"):
        fetcher.fetch("/c/1")


def test_a_connection_closed_while_idle_is_replaced_without_a_retry(make):
    said: list[str] = []
    fetcher = make(serve_ranges, idle=0.2, log=said.append)
    assert bytes(fetcher.fetch("/c/1")) == BODIES["/c/1"]
    time.sleep(0.5)  # the server lets the kept-alive connection go
    assert bytes(fetcher.fetch("/c/2")) == BODIES["/c/2"]
    assert fetcher.script.connections == 2
    assert said == []  # no "retrying in …": nothing went wrong
