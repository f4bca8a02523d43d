"""The ``slate`` command line.

Every module in this package that defines ``register(subparsers)`` adds one command
group (``slate image …``, ``slate host …``).  A command handler is
``fn(args) -> int | None`` and raises :class:`~appliance.errors.SlateError` for
anything the user can fix; only this module turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from appliance import __version__
from appliance.cli.output import die
from appliance.errors import SlateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slate",
        description="Slate: network-boot bare-metal restore appliance.",
    )
    parser.add_argument("--version", action="version", version=f"slate {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="data directory (default: $SLATE_HOME, else /var/lib/slate as root, "
        "else ~/.local/share/slate)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "output":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        # A group without a subcommand: show that group's help.
        helper = getattr(args, "help_parser", parser)
        helper.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except SlateError as exc:
        if args.debug:
            raise
        return die(exc.message, hint=exc.hint, code=exc.exit_code)
    except KeyboardInterrupt:
        return die("interrupted", code=130)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
