"""Under slate.service `slate serve` logs to the journal, which time-stamps every line:
its own time stamp is left out there, and only there; and it tells systemd when it is
ready (Type=notify) (issue 27)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from appliance.cli.serve import notify_systemd, to_journal
from tests.conftest import ROOT


def test_the_journal_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as fh:
        st = os.fstat(fh.fileno())
        assert to_journal(fh, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}) is True
        assert to_journal(fh, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}) is False
        assert to_journal(fh, {}) is False


def test_serve_leaves_its_time_stamp_out_in_the_journal(tmp_path: Path) -> None:
    err = tmp_path / "err"
    code = (
        "import logging, os, sys;"
        "from appliance.cli.serve import setup_logging;"
        "setup_logging(False); logging.getLogger('slate.serve').info('ready')"
    )
    for journal in (False, True):
        with open(err, "w") as fh:
            st = os.fstat(fh.fileno())
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if journal:
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            subprocess.run([sys.executable, "-c", code], stderr=fh, env=env, cwd=ROOT, check=True)
        line = err.read_text()
        if journal:
            assert line == "serve: ready\n"
        else:
            assert line[8:] == " serve: ready\n" and line[2] == line[5] == ":"


def test_systemd_is_notified_on_a_path_or_an_abstract_socket(tmp_path: Path) -> None:
    for name in (str(tmp_path / "notify"), f"@slate-test-{os.getpid()}"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name[1:] if name[0] == "@" else name)
            assert notify_systemd("READY=1", {"NOTIFY_SOCKET": name}) is True
            assert sock.recv(100) == b"READY=1"
    assert notify_systemd("READY=1", {}) is False  # not started by systemd
    assert notify_systemd("READY=1", {"NOTIFY_SOCKET": "vsock:2:1"}) is False  # not ours
