"""The client channel over TLS, in network namespaces: the appliance (the real HTTP app
under cheroot, with its client channel on port 8444) serves boot scripts naming both
URLs and an initrd carrying its certificate; the real client restores with its API calls
and the manifest over TLS pinned to that certificate and its chunks over plain HTTP.
While the channel runs, plain HTTP refuses the client API and the manifests.  A client
pinned to another certificate refuses to talk: clear error, nothing written, and the
job fails loudly (the one call it makes over plain HTTP is to fail its job).  A capture
goes through the channel too (its uploads and commit)."""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

from client_kit import MAC, MIB, ROOT, ServedHome, client_argv, free_port, make_disk, run_client

from appliance.http.listeners import CLIENT_FILES, ensure_certificate
from appliance.lab.netns import Lab
from appliance.store import Store
from tests.conftest import require_root

TLS_PORT = 8444
BUILT = b"the built initrd\n" * 1000  # not a real initramfs: what is prepended matters here


def _serve(lab: Lab, tmp_path: Path) -> tuple[ServedHome, object, object]:
    srv = lab.add_host("srv", "10.97.0.1/24")
    c1 = lab.add_host("c1", "10.97.0.2/24")
    app = ServedHome(tmp_path / "home", host="10.97.0.1", wrap=srv.argv([]),
                    extra=["--tls-port", str(TLS_PORT)])  # fmt: skip
    app.layout.bootimage.mkdir(parents=True, exist_ok=True)
    (app.layout.bootimage / "initrd.img").write_bytes(BUILT)
    (app.layout.bootimage / "vmlinuz").write_bytes(b"kernel")
    return app, srv, c1


def _curl(c1, *args: str) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.run(c1.argv(["curl", "-sS", "--max-time", "20", *args]),
                          capture_output=True, check=True)  # fmt: skip


def test_restore_over_the_pinned_tls_channel(tmp_path: Path) -> None:
    require_root()
    source = tmp_path / "master.img"
    make_disk(source, 24 * MIB)
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(24 * MIB)
    with Lab() as lab:
        app, _srv, c1 = _serve(lab, tmp_path)
        with app:
            app.import_disk(source)
            job, token = app.restore_job()
            cert = app.home / CLIENT_FILES[0]
            # The boot script names both URLs.
            script = _curl(c1, f"{app.url}/boot/{MAC}.ipxe").stdout.decode()
            assert f"slate.url={app.url} slate.api=https://10.97.0.1:{TLS_PORT} " in script
            # The initrd served is a cpio archive with the certificate, then the built one.
            served = _curl(c1, f"{app.url}/bootenv/initrd.img").stdout
            assert served.endswith(BUILT)
            unpacked = tmp_path / "unpacked"
            unpacked.mkdir()
            subprocess.run(["cpio", "-idm", "--quiet"], input=served, cwd=unpacked, check=True)
            pin = unpacked / "etc/slate/appliance.pem"  # what the boot environment gets
            assert pin.read_bytes() == cert.read_bytes()
            # Plain HTTP refuses the client API and manifests while the channel runs.
            plain = _curl(c1, "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {token}",
                          f"{app.url}/api/client/v1/job").stdout.decode()  # fmt: skip
            body, status = plain.rsplit("\n", 1)
            assert status == "403" and "over TLS only" in json.loads(body)["error"]
            argv = client_argv(app.url, job, token, target, "--api",
                               f"https://10.97.0.1:{TLS_PORT}", "--pin", str(pin))  # fmt: skip
            run = c1.run(argv, check=False, cwd=ROOT, timeout=300)
            assert run.returncode == 0, run.stderr
            assert "client API over TLS to 10.97.0.1:8444, pinned certificate" in run.stderr
            ended = app.job(job.id)
            assert ended.state == "done", ended.reason
            assert ended.verified_bytes == 24 * MIB
    assert filecmp.cmp(source, target, shallow=False)


def test_a_client_pinned_to_another_certificate_refuses_to_talk(tmp_path: Path) -> None:
    require_root()
    source = tmp_path / "master.img"
    make_disk(source, 8 * MIB)
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(8 * MIB)
    other = tmp_path / "other"
    other.mkdir()
    wrong, _key = ensure_certificate(other, ["10.97.0.1"], files=CLIENT_FILES)
    with Lab() as lab:
        app, _srv, c1 = _serve(lab, tmp_path)
        with app:
            app.import_disk(source)
            job, token = app.restore_job()
            argv = client_argv(app.url, job, token, target, "--api",
                               f"https://10.97.0.1:{TLS_PORT}", "--pin", str(wrong),
                               "--give-up-after", "600")  # fmt: skip
            run = c1.run(argv, check=False, cwd=ROOT, timeout=120)
            assert run.returncode == 1, run.stderr
            assert "cannot start: the appliance at 10.97.0.1:8444 is not the pinned one" in (
                run.stderr
            )
            assert "nothing was written" in run.stderr and "retrying" not in run.stderr
            assert f"reported the failure to {app.url}" in run.stderr
            after = app.job(job.id)
            assert after.state == "failed" and not after.verified_bytes
            assert "10.97.0.1:8444 is not the pinned one" in (after.reason or "")
    assert target.read_bytes() == bytes(8 * MIB)  # not a byte written


def test_capture_through_the_pinned_tls_channel(tmp_path: Path) -> None:
    source = tmp_path / "pc.img"
    make_disk(source, 16 * MIB)
    tls_port = free_port()
    with ServedHome(tmp_path / "home", extra=["--tls-port", str(tls_port)]) as app:
        job, token = app.capture_job("captured")
        pin = app.home / CLIENT_FILES[0]
        proc = run_client(app.url, job, token, source, "--api",
                          f"https://127.0.0.1:{tls_port}", "--pin", str(pin))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"client API over TLS to 127.0.0.1:{tls_port}, pinned certificate" in proc.stderr
        ended = app.job(job.id)
        assert ended.state == "done", ended.reason
        manifest = Store(app.layout).resolve("captured")
        assert manifest.disks[0].size == 16 * MIB
