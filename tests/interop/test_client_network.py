"""Network trouble between the client and the appliance, in network namespaces: the
link to the client goes down for 30 s mid-restore; the restore resumes and ends
verified."""

from __future__ import annotations

import filecmp
import subprocess
import time
from pathlib import Path

from client_kit import MIB, ROOT, ServedHome, client_argv, make_disk

from appliance.lab.netns import Lab
from tests.conftest import require_root


def test_link_down_for_30_seconds_mid_restore(tmp_path: Path) -> None:
    require_root()
    source = tmp_path / "master.img"
    make_disk(source, 96 * MIB, data_fraction=1.0)
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(96 * MIB)
    with Lab() as lab:
        srv = lab.add_host("srv", "10.99.0.1/24")
        c1 = lab.add_host("c1", "10.99.0.2/24")
        # ~12 MB/s, so the restore is still running when the link drops.
        srv.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "100mbit",
                 "burst", "256kb", "latency", "50ms"])  # fmt: skip
        with ServedHome(tmp_path / "home", host="10.99.0.1", wrap=srv.argv([])) as app:
            app.import_disk(source)
            job, token = app.restore_job()
            client = c1.popen(client_argv(app.url, job, token, target, "--workers", "2"),
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
            try:
                assert client.stderr is not None
                for line in client.stderr:
                    if "restoring lab@" in line:
                        break
                time.sleep(1.5)
                c1.run(["ip", "link", "set", "eth0", "down"])
                time.sleep(30)
                assert client.poll() is None, "the client gave up while the link was down"
                c1.run(["ip", "link", "set", "eth0", "up"])
                rest = client.communicate(timeout=240)[1]
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            assert client.returncode == 0, rest
            assert "retrying" in rest, rest
            ended = app.job(job.id)
            assert ended.state == "done", ended.reason
            assert ended.verified_bytes == 96 * MIB
    assert filecmp.cmp(source, target, shallow=False)
