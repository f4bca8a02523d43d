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


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """The data directory to use, created if missing."""
    path = Path(home) if home else default_home()
    path.mkdir(parents=True, exist_ok=True)
    return path


class Layout:
    """Paths inside one data directory.  Everything on disk is named here."""

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
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def logs(self) -> Path:
        return self.home / "logs"
