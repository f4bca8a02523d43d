"""The real HttpServer (cheroot + sendfile) on loopback, driven by curl: keep-alive,
Range, 32 concurrent clients, auth, uploads, boot scripts."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, decode_chunk, hash_chunk
from appliance.formats.names import chunk_relpath
from appliance.http import create_app
from appliance.http.server import HttpServer
from tests.unit.http_kit import V1, write_image

MAC = "52:54:00:00:00:01"


@pytest.fixture
def served(home):
    layout = Layout(home)
    image = write_image(layout, "win11", V1, n=8)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host(MAC, "pc1", actor="t")
    job = facade.jobs.restore("pc1", "win11", actor="t")
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield server, facade, image, facade.jobs.token(job.id)
    finally:
        server.stop()


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)


def test_keep_alive_reuses_one_connection(served):
    server, _, image, token = served
    urls = [f"{server.url}/store/{chunk_relpath(d)}" for d in image.digests[:3]]
    args = ["-v", "-H", f"Authorization: Bearer {token}"]
    for u in urls:
        args += [u, "-o", "/dev/null"]
    proc = curl(*args)
    assert proc.returncode == 0, proc.stderr
    log = proc.stderr.decode()
    assert log.count("Connected to 127.0.0.1") == 1
    assert log.count("Re-using existing connection") == 2
    assert log.count("HTTP/1.1 200") == 3


def test_range_and_full_body_through_sendfile(served, tmp_path):
    server, facade, image, token = served
    digest = image.digests[0]
    url = f"{server.url}/store/{chunk_relpath(digest)}"
    on_disk = (facade.layout.store / chunk_relpath(digest)).read_bytes()
    out = tmp_path / "full"
    proc = curl("-H", f"Authorization: Bearer {token}", "-o", str(out), url)
    assert proc.returncode == 0 and out.read_bytes() == on_disk
    assert decode_chunk(digest, on_disk, 64 * 1024) == image.chunks[digest]
    proc = curl("-H", f"Authorization: Bearer {token}", "-r", "100-199", "-D", "-", url)
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    assert b"206" in head.split(b"\r\n")[0]
    assert body == on_disk[100:200]
    proc = curl("-H", f"Authorization: Bearer {token}", "-I", url)
    assert f"Content-Length: {len(on_disk)}".encode() in proc.stdout


def test_32_concurrent_clients_get_exact_bytes(served, tmp_path):
    server, _, image, token = served
    procs = []
    for c in range(32):
        args = ["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {token}"]
        for i in range(4):
            digest = image.digests[(c + i) % len(image.digests)]
            args += [
                f"{server.url}/store/{chunk_relpath(digest)}",
                "-o",
                str(tmp_path / f"{c}-{i}"),
            ]
        procs.append(subprocess.Popen(args, stderr=subprocess.PIPE))
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
    for c in range(32):
        for i in range(4):
            digest = image.digests[(c + i) % len(image.digests)]
            frame = (tmp_path / f"{c}-{i}").read_bytes()
            assert hashlib.sha256(decode_chunk(digest, frame, 64 * 1024)).hexdigest() == digest


def test_auth_over_the_wire(served):
    server, _, image, token = served
    url = f"{server.url}/store/{chunk_relpath(image.digests[0])}"
    assert curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == b"401"
    wrong = curl("-H", "Authorization: Bearer " + "0" * 64, "-w", "%{http_code}", url)
    assert wrong.stdout.endswith(b"401")
    path = curl(
        "--path-as-is",
        "-H",
        f"Authorization: Bearer {token}",
        "-w",
        " %{http_code}",
        f"{server.url}/store/../slate.db",
    )
    assert path.stdout.endswith(b"404") and b"SQLite" not in path.stdout


def test_boot_script_then_client_calls(served):
    server, _, _, _ = served
    script = curl(f"{server.url}/boot/{MAC.upper().replace(':', '-')}.ipxe").stdout.decode()
    assert script.startswith("#!ipxe") and f"slate.url={server.url} " in script
    token = script.split("slate.token=")[1].split()[0]
    job = curl("-H", f"Authorization: Bearer {token}", f"{server.url}/api/client/v1/job")
    assert b'"state":"running"' in job.stdout
    done = curl(
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"verified_bytes": 5}',
        f"{server.url}/api/client/v1/done",
    )
    assert b'"done"' in done.stdout


def test_capture_upload_over_the_wire(home, tmp_path):
    layout = Layout(home)
    app = create_app(layout, plugins=False)
    facade = app.extensions["slate"]
    facade.inventory.add_host(MAC, "ref", actor="t")
    job = facade.jobs.capture("ref", "newimg", actor="t")
    token = facade.jobs.token(job.id)
    data = os.urandom(64 * 1024)
    digest = hash_chunk(data)
    frame = tmp_path / "frame"
    frame.write_bytes(compress_chunk(data))
    bad = tmp_path / "bad"
    bad.write_bytes(compress_chunk(b"\1" * 1024))
    with HttpServer(app, "127.0.0.1", 0) as server:
        url = f"{server.url}/api/client/v1/capture/chunk/{digest}"
        auth = f"Authorization: Bearer {token}"
        r = curl("-X", "PUT", "-H", auth, "--data-binary", f"@{bad}", "-w", " %{http_code}", url)
        assert r.stdout.endswith(b"400")
        r = curl("-X", "PUT", "-H", auth, "--data-binary", f"@{frame}", "-w", " %{http_code}", url)
        assert r.stdout.endswith(b"200")
    stored = Path(layout.store / chunk_relpath(digest))
    assert decode_chunk(digest, stored.read_bytes(), len(data)) == data


def test_client_hanging_up_mid_body_does_not_hurt_the_server(home):
    import socket

    layout = Layout(home)
    layout.bootimage.mkdir(parents=True)
    (layout.bootimage / "initrd.img").write_bytes(os.urandom(32 * 1024 * 1024))
    with HttpServer(create_app(layout, plugins=False), "127.0.0.1", 0) as server:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"GET /bootenv/initrd.img HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
            # closed with most of the body unsent
        r = curl(
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            f"{server.url}/bootenv/initrd.img",
        )
        assert r.stdout == f"200 {32 * 1024 * 1024}".encode()
