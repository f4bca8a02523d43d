"""Under slate.service `slate serve` logs to the journal, which time-stamps every line:
its own time stamp is left out there, and only there (issue 27)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from appliance.cli.serve import to_journal
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
