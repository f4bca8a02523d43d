"""Where Slate keeps its data, and its settings.

The data directory ("home") is, in order: ``--home DIR``, ``$SLATE_HOME``, then
``/var/lib/slate`` when running as root, else ``~/.local/share/slate``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT_HOME = Path("/var/lib/slate")


def default_home() -> Path:
    env = os.environ.get("SLATE_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return DEFAULT_ROOT_HOME
    return Path.home() / ".local" / "share" / "slate"


HOME_MODE = 0o700  # the database, secrets and keys live in it: its owner's only


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """The data directory to use, created (0700) if missing; one that exists keeps its
    mode (the package makes /var/lib/slate 0700)."""
    path = Path(home) if home else default_home()
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=HOME_MODE, exist_ok=True)
    return path


class Layout:
    """Paths inside one data directory.  Everything on disk is named here."""

    # Certificate and key (0600) files: the console's listener, the client channel's.
    CONSOLE_TLS = ("console-cert.pem", "console-key.pem")
    CLIENT_TLS = ("client-cert.pem", "client-key.pem")
    LAB_STATE = "lab.json"  # `slate lab up`: what it started (0600: carries the login)
    LAB_LOGIN = "lab-login.json"  # the lab's console login (0600)

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def db(self) -> Path:
        return self.home / "slate.db"

    @property
    def store(self) -> Path:
        """The image library: ``chunks/`` and ``manifests/``, servable as plain files."""
        return self.home / "store"

    @property
    def tftp_root(self) -> Path:
        return self.home / "tftp"

    @property
    def bootimage(self) -> Path:
        """Built kernel + initramfs of the boot environment."""
        return self.home / "bootimage"

    @property
    def bootenv_pinned(self) -> Path:
        """The initrds served with the client channel's certificate put first."""
        return self.home / "bootenv-pinned"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def roomcast_status(self) -> Path:
        """One JSON file per room session, written by its sender (for the CLI)."""
        return self.home / "roomcast"

    @property
    def job_secret(self) -> Path:
        """The secret job tokens derive from (0600; appliance.jobs.tokens)."""
        return self.home / "job-secret"

    @property
    def console_secret(self) -> Path:
        """The console's session-signing secret (0600)."""
        return self.home / "console-secret"

    @property
    def console_cert(self) -> Path:
        return self.home / self.CONSOLE_TLS[0]

    @property
    def console_key(self) -> Path:
        return self.home / self.CONSOLE_TLS[1]

    @property
    def client_cert(self) -> Path:
        """The client channel's certificate, pinned in the initrd served."""
        return self.home / self.CLIENT_TLS[0]

    @property
    def client_key(self) -> Path:
        return self.home / self.CLIENT_TLS[1]

    @property
    def lab_work(self) -> Path:
        """The working directory of `slate lab up` (disks, serial logs, firmware vars)."""
        return self.home / "lab"

    @property
    def demo_work(self) -> Path:
        """The working directory of `slate demo`."""
        return self.home / "demo"

    @property
    def district_key(self) -> Path:
        """This appliance's Ed25519 key that signs the manifests it publishes (0600)."""
        return self.home / "district-ed25519.key"

    @property
    def district(self) -> Path:
        """The district libraries' files: each one's credentials (0600) and the signed
        manifests fetched so far (a version's state is counted against them)."""
        return self.home / "district"

    @property
    def lab_state(self) -> Path:
        return self.home / self.LAB_STATE

    @property
    def lab_login(self) -> Path:
        return self.home / self.LAB_LOGIN
