"""SSH host keys kept per machine, over the real pinned TLS client channel (in network
namespaces): the real client restores a Linux root twice and the machine has the same
host key both times, the one the appliance keeps for it; over plain HTTP it gets fresh
ones."""

from __future__ import annotations

from pathlib import Path

from client_kit import MAC, MIB, ROOT, ServedHome, client_argv, log_lines
from identity_kit import make_linux_disk, read_linux

from appliance import db
from appliance.http.listeners import CLIENT_FILES
from appliance.lab.netns import Lab
from appliance.machines import identity
from tests.conftest import require_root

TLS_PORT = 8444


def test_kept_host_keys_over_tls_are_the_same_after_every_restore(tmp_path: Path) -> None:
    require_root()
    source = tmp_path / "linux.img"
    mnt = tmp_path / "mnt"
    part = make_linux_disk(source, mnt, "ext4", 64 * MIB)
    target = tmp_path / "pc1.img"
    with target.open("wb") as f:
        f.truncate(64 * MIB)
    keys = []
    with Lab() as lab:
        srv = lab.add_host("srv", "10.98.0.1/24")
        c1 = lab.add_host("c1", "10.98.0.2/24")
        app = ServedHome(tmp_path / "home", host="10.98.0.1", wrap=srv.argv([]),
                        extra=["--tls-port", str(TLS_PORT)])  # fmt: skip
        with app:
            app.import_disk(source)
            pin = app.home / CLIENT_FILES[0]
            for _ in range(2):
                job, token = app.restore_job()
                argv = client_argv(app.url, job, token, target, "--api",
                                   f"https://10.98.0.1:{TLS_PORT}", "--pin", str(pin))  # fmt: skip
                run = c1.run(argv, check=False, cwd=ROOT, timeout=300)
                assert run.returncode == 0, run.stderr
                assert app.job(job.id).state == "done", app.job(job.id).reason
                log = log_lines(app, job.id)
                assert any("this machine's kept 1 key(s), over TLS" in x for x in log), log
                got = read_linux(target, mnt, part, "ext4")
                keys.append(got["etc/ssh/ssh_host_ed25519_key.pub"])
                assert got["keys"] == "ssh_host_ed25519_key ssh_host_ed25519_key.pub"
        conn = db.connect(app.layout.db)
        kept = identity.ssh_host_keys(conn, MAC, "pc1")
    assert keys[0] == keys[1] == kept[0]["public"]
    assert keys[0].rstrip().endswith("root@pc1")
