"""Chunk serving: aggregate throughput of 32 concurrent clients, Slate vs nginx.

Both servers serve the same store files on loopback in the same run: Slate's real
app under ``HttpServer`` (with job-token checks on every request), and Debian's
nginx-light (sendfile on, keep-alive) started here with its own config, pid and logs
in a temp dir.  Each client is one curl process fetching a list of chunk URLs over
one keep-alive connection; the figure is total bytes / wall time until every client
is done.  Every transfer's size is checked, so a fast wrong answer cannot win.

    .venv/bin/python bench/http_bench.py                # 32 clients, median of 3
    .venv/bin/python bench/http_bench.py --runs 5 --modes nginx,slate,slate-copy
    .venv/bin/python bench/http_bench.py --quick        # seconds; run by a unit test

Modes: ``nginx`` (baseline), ``slate`` (cheroot + sendfile, what Slate runs),
``slate-copy`` (the same server without the sendfile path: bodies go through Python),
``waitress`` (the same app under waitress, if installed) — the last two are the
measurements behind docs/http.md.  Goal: slate >= 0.8 x nginx.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import Row, median, print_rows  # noqa: E402

from appliance.config import Layout  # noqa: E402
from appliance.formats.chunkio import hash_chunk  # noqa: E402
from appliance.formats.manifest import Chunk, Disk, Manifest  # noqa: E402
from appliance.formats.names import chunk_relpath, manifest_relpath  # noqa: E402

NGINX = "/usr/sbin/nginx"
VERSION = "20261125T120000Z"
# `user root`: the store lives in a 0700 temp dir that nginx's usual www-data
# workers could not read (as non-root nginx ignores the line).
NGINX_CONF = """\
user root root;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 60;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /store/ {{ alias {root}/; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def make_home(home: Path, files: int, size: int) -> tuple[Layout, list[str], str]:
    """A data dir whose store holds ``files`` random chunks of ``size`` bytes, one image
    naming them all, a host and a restore job; returns (layout, chunk paths, token)."""
    from appliance.http.context import HttpContext

    layout = Layout(home)
    digests = []
    for _ in range(files):
        data = os.urandom(size)  # incompressible: the file is as big as the chunk
        digest = hash_chunk(data)
        path = layout.store / chunk_relpath(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # served as opaque bytes; never decoded here
        digests.append(digest)
    chunks = tuple(Chunk("hash", d) for d in digests)
    disk = Disk(index=0, size=size * files, chunk_size=size, chunks=chunks)
    manifest = Manifest(image="bench", version=VERSION, created="", disks=(disk,))
    mpath = layout.store / manifest_relpath("bench", VERSION)
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_bytes(manifest.to_json())
    context = HttpContext(layout)
    context.inventory.add_host("02:00:00:00:00:01", "bench", actor="bench")
    job = context.jobs.restore("bench", "bench", actor="bench")
    return layout, [chunk_relpath(d) for d in digests], context.jobs.token(job.id)


@contextmanager
def nginx(root: Path, workers: int) -> Iterator[str]:
    tmp = Path(tempfile.mkdtemp(prefix="slate-bench-nginx-"))
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, tmp=tmp, port=port, root=root))
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def slate(layout: Layout, sendfile: bool) -> Iterator[str]:
    from cheroot import wsgi

    from appliance.http import create_app
    from appliance.http.server import HttpServer

    server = HttpServer(create_app(layout, plugins=False), "127.0.0.1", 0)
    if not sendfile:
        server._server.gateway = wsgi.Gateway_10  # the stock cheroot gateway
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def waitress_server(layout: Layout) -> Iterator[str]:
    import waitress.server

    from appliance.http import create_app

    port = free_port()
    srv = waitress.server.create_server(
        create_app(layout, plugins=False), host="127.0.0.1", port=port, threads=32
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.close()
        thread.join(timeout=5)


def one_run(
    base: str, paths: list[str], token: str, clients: int, per_client: int
) -> tuple[int, float]:
    """(bytes moved, seconds) for ``clients`` curl processes fetching ``per_client`` files."""
    cmds = []
    for c in range(clients):
        args = ["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {token}"]
        args += ["-w", "%{size_download}\\n"]
        for i in range(per_client):
            args += [f"{base}/store/{paths[(c + i) % len(paths)]}", "-o", "/dev/null"]
        cmds.append(args)
    start = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, text=True) for a in cmds]
    outputs = [p.communicate()[0] for p in procs]
    elapsed = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a client failed against {base}")
    return sum(int(x) for out in outputs for x in out.split()), elapsed


def check_sizes(root: Path, paths: list[str], clients: int, per_client: int) -> int:
    sizes = [(root / p).stat().st_size for p in paths]
    return sum(sizes[(c + i) % len(paths)] for c in range(clients) for i in range(per_client))


SERVERS: dict[str, Callable[[Layout, int], object]] = {
    "nginx": lambda layout, workers: nginx(layout.store, workers),
    "slate": lambda layout, workers: slate(layout, sendfile=True),
    "slate-copy": lambda layout, workers: slate(layout, sendfile=False),
    "waitress": lambda layout, workers: waitress_server(layout),
}


def measure(args: argparse.Namespace) -> dict[str, float]:
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown mode(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="slate-bench-http-") as tmp:
        layout, paths, token = make_home(Path(tmp), args.files, args.size)
        want = check_sizes(layout.store, paths, args.clients, args.per_client)
        results: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.runs):
            for mode in modes:  # interleaved, so drift hits every mode alike
                with SERVERS[mode](layout, args.workers) as base:  # type: ignore[attr-defined]
                    moved, seconds = one_run(str(base), paths, token, args.clients, args.per_client)
                if moved != want:
                    raise RuntimeError(f"{mode}: moved {moved} bytes, expected {want}")
                results[mode].append(moved / seconds)
        return {m: median(v) for m, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--files", type=int, default=32, help="distinct chunk files")
    p.add_argument("--size", type=int, default=4 * 1024 * 1024, help="bytes per chunk file")
    p.add_argument("--per-client", type=int, default=16, help="files each client fetches")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="nginx workers")
    p.add_argument("--modes", default="nginx,slate")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the bench works")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.files, args.size, args.per_client, args.runs = 4, 4, 65536, 4, 1
    rates = measure(args)
    mib = 1024 * 1024
    rows = [
        Row(
            f"{m}, {args.clients} clients",
            rates[m] / mib,
            rates["nginx"] / mib,
            "MiB/s",
            ">= 0.8 x nginx" if m == "slate" else "",
        )
        for m in rates
        if m != "nginx" and "nginx" in rates
    ]
    print_rows(
        rows,
        f"chunk serving: median of {args.runs}, {args.files} files "
        f"of {args.size} B, {args.per_client} per client (baseline: nginx)",
    )
    if "nginx" in rates and "slate" in rates:
        print(f"ratio slate/nginx: {rates['slate'] / rates['nginx']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
