"""``slate serve``: run the appliance (DHCP, TFTP, DNS, HTTP) on one interface."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

from appliance import settings as settings_mod
from appliance.config import Layout, resolve_home


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the appliance: DHCP, TFTP, DNS and HTTP on one interface",
        description="Run every Slate service in one process, bound to one network "
        "interface.  Every flag can also be given as an environment variable SLATE_<NAME> "
        "or a line NAME=value of the configuration file (--config). "
        "Stops cleanly on SIGTERM or Ctrl-C.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file of KEY=value lines, overridden by flags and SLATE_*"
        " variables (env SLATE_CONFIG; default: /etc/slate/slate.conf if it exists;"
        " `slate config default` prints one)",
    )
    settings_mod.add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every transfer")
    parser.set_defaults(func=run)


class _ServiceName(logging.Filter):
    """``slate.tftp`` -> ``tftp: ``: the prefix of every log line (once, even when a
    module already starts its messages with it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        service = name.split(".", 1)[1] if name.startswith("slate.") else name
        prefix = f"{service}: "
        record.prefix = "" if str(record.msg).startswith(prefix) else prefix
        return True


def to_journal(stream: Any = None, env: Any = None) -> bool:
    """Whether ``stream`` (stderr) is systemd's journal: ``$JOURNAL_STREAM`` names its
    device and inode (slate.service), and the journal time-stamps every line itself."""
    stream = sys.stderr if stream is None else stream
    env = os.environ if env is None else env
    try:
        st = os.fstat(stream.fileno())
    except (OSError, AttributeError, ValueError):
        return False
    return bool(env.get("JOURNAL_STREAM") == f"{st.st_dev}:{st.st_ino}")


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ServiceName())
    stamp = "" if to_journal() else "%(asctime)s "
    handler.setFormatter(logging.Formatter(f"{stamp}%(prefix)s%(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # Start-up and shutdown lines are always worth a line.
    logging.getLogger("slate.serve").setLevel(logging.INFO)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def notify_systemd(message: str, env: Any = None) -> bool:
    """Tell systemd (``Type=notify``: slate.service) ``READY=1`` once every socket
    listens, ``STOPPING=1`` when it stops; nothing when not started by systemd."""
    env = os.environ if env is None else env
    target = env.get("NOTIFY_SOCKET", "")
    if not target or target[0] not in "/@":
        return False
    address = "\0" + target[1:] if target[0] == "@" else target  # @: the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        logging.getLogger("slate.serve").warning("cannot notify systemd: %s", exc)
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from appliance.server import Appliance

    setup_logging(args.verbose)
    path = settings_mod.config_path(args.config)
    config = settings_mod.read_config(path) if path else {}
    settings = settings_mod.resolve(settings_mod.from_sources(args, config=config))
    layout = Layout(resolve_home(args.home))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    appliance = Appliance(layout, settings)
    appliance.start()
    log = logging.getLogger("slate.serve")
    log.info("ready (data in %s)", layout.home)
    notify_systemd(f"READY=1\nSTATUS=serving on {settings.interface} ({settings.address})")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping")
        notify_systemd("STOPPING=1")
        appliance.stop()
    log.info("stopped")
    return 0
