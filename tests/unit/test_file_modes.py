"""Every file Slate writes under its data directory after a demo-sized run, with its
mode (issue 27): the database, secrets and keys 0600, their directories 0700, the data
directory 0700; files that hold nothing secret are listed here one by one, with why."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

from appliance import db
from appliance.config import Layout
from appliance.lab.owned import ensure_login
from tests.conftest import ROOT

# Files and directories that hold nothing secret, and may be read by others (were the
# data directory, 0700, not in the way): a pattern of the path under the data directory.
PUBLIC = {
    # Certificates are what every client is shown (and pins); their keys are 0600.
    r"client-cert\.pem": 0o644,
    r"console-cert\.pem": 0o644,
    # The image library: chunks and manifests are served to any machine on the imaging
    # network over plain HTTP and TFTP anyway, and are read back by the appliance's own
    # services only; their folders, the gc lock and the format number likewise.
    r"store": 0o755,
    r"store/(chunks|chunks/[0-9a-f]{2}|manifests|manifests/[^/]+|sessions|tmp)": 0o755,
    r"store/chunks/[0-9a-f]{2}/[0-9a-f]{64}\.zst": 0o644,
    r"store/manifests/[^/]+/\d{8}T\d{6}Z\.json": 0o644,
    r"store/(format|gc\.lock)": 0o644,
    # The boot loaders served to every PXE client by TFTP: copies of Debian's files.
    r"tftp": 0o755,
    r"tftp/(undionly\.kpxe|snponly\.efi|ipxe\.efi|shimx64\.efi|grubx64\.efi)": 0o644,
}
# Everything else must be exactly this: the secrets and the database (password hashes,
# the audit log, the inventory).
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
EXPECTED_SECRETS = {
    ".",  # the data directory
    "slate.db",
    "slate.db-wal",  # while `slate serve` runs (SQLite gives them the database's mode)
    "slate.db-shm",
    "job-secret",
    "console-secret",
    "console-key.pem",
    "client-key.pem",
    "district",
    "district/state.key",
    "district-ed25519.key",
    "lab-login.json",
}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def modes(home: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(home.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_every_file_of_a_demo_sized_run_has_its_mode(tmp_path: Path) -> None:
    home = tmp_path / "data"  # made by slate itself
    env = dict(os.environ, SLATE_HOME=str(home))

    def slate(*args: str, stdin: str = "") -> None:
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", *args], input=stdin,
                              capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
        assert proc.returncode == 0, f"slate {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"

    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(4 << 20)
        fh.seek(1 << 20)
        fh.write(b"a school's disk" * 1000)
    slate("host", "add", "02:00:00:00:00:01", "--name", "pc-01", "--room", "lab1")
    slate("image", "import", str(disk), "--name", "win11", "--format", "raw")
    slate("user", "add", "alice", "--role", "admin", "--password-stdin", stdin="long-secret-pw\n")
    slate("job", "restore", "--host", "pc-01", "--image", "win11")
    slate("library", "key")
    slate("library", "state-key")
    ensure_login(home)  # what `slate lab up` does for its console login

    # `slate serve` on the loopback interface makes the certificates and the console's
    # secret; the files are listed while it runs, and while a connection is open, so the
    # database's -wal and -shm exist.
    reader = db.connect(Layout(home).db)
    reader.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()
    # Its settings come from a configuration file, the environment and flags at once.
    conf = tmp_path / "slate.conf"
    conf.write_text(f"INTERFACE=lo\nADDRESS=127.0.0.1/8\nDHCP=off\nHTTP_PORT=80\n"
                    f"CONSOLE_LISTEN=127.0.0.1:{free_port()}\n")  # fmt: skip
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as systemd's, Type=notify
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    serve = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "serve", "--config", str(conf),
         "--http-port", str(free_port()), "--tftp-port", str(free_port(socket.SOCK_DGRAM))],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(env, SLATE_CLIENT_TLS_PORT=str(free_port()),
                 NOTIFY_SOCKET=str(tmp_path / "notify")),
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        seen, served = [], ""
        for line in serve.stderr:
            seen.append(line)
            if "serve: ready" in line:
                break
            if "serve: serving on lo (127.0.0.1), DHCP off, HTTP http://127.0.0.1:" in line:
                served = line  # the flag's port, not the file's 80
        else:
            raise AssertionError("slate serve did not start:\n" + "".join(seen))
        assert notify.recv(4096) == b"READY=1\nSTATUS=serving on lo (127.0.0.1)"
        found = modes(home)
        assert served and ":80," not in served
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=60)
        reader.close()
    assert notify.recv(4096) == b"STOPPING=1"
    notify.close()

    wrong = {}
    for path, mode in sorted(found.items()):
        public = [m for pattern, m in PUBLIC.items() if re.fullmatch(pattern, path)]
        if public:
            want = public[0]
        else:
            want = PRIVATE_DIR if (home / path).is_dir() else PRIVATE_FILE
            assert path in EXPECTED_SECRETS, f"{path} ({oct(mode)}) is not accounted for here"
        if mode != want:
            wrong[path] = f"{oct(mode)}, not {oct(want)}"
    assert wrong == {}
    assert sorted(EXPECTED_SECRETS - set(found)) == []  # each one was made, so each one was checked
    assert any(p.startswith("store/chunks/") and p.endswith(".zst") for p in found)
