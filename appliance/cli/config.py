"""``slate config``: the configuration file of ``slate serve`` (/etc/slate/slate.conf)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance import settings as settings_mod
from appliance.cli.output import add_group, add_json_flag, print_json
from appliance.errors import UsageError


def register(subparsers: Any) -> None:
    _, sub = add_group(
        subparsers, "config", "the configuration file of slate serve: default, check"
    )
    p = sub.add_parser(
        "default",
        help="print a configuration file with every setting documented, commented out",
        description="Print /etc/slate/slate.conf as it is shipped: every setting of "
        "`slate serve`, documented, commented out at its default.",
    )
    p.set_defaults(func=default)
    p = sub.add_parser(
        "check",
        help="check a configuration file and show the settings it makes",
        description="Read a configuration file as `slate serve` does (flags and SLATE_* "
        "environment variables still override it) and print the settings that result; "
        "a bad line is refused, naming its line and key.",
    )
    p.add_argument(
        "path",
        nargs="?",
        help="the file (default: $SLATE_CONFIG, else /etc/slate/slate.conf)",
    )
    add_json_flag(p)
    p.set_defaults(func=check)


def default(args: argparse.Namespace) -> int:
    print(settings_mod.default_config(__version__), end="")
    return 0


def check(args: argparse.Namespace) -> int:
    path = settings_mod.config_path(args.path)
    if path is None:
        raise UsageError(
            f"there is no configuration file {settings_mod.DEFAULT_CONFIG}",
            hint="name one, or write one: slate config default > /etc/slate/slate.conf",
        )
    config = settings_mod.read_config(Path(path))
    settings = settings_mod.from_sources(None, config=config)
    values = settings_mod.as_dict(settings)
    if args.json:
        print_json({"path": str(path), "settings": values, "from_file": sorted(config)})
        return 0
    print(f"{path}: {len(config)} setting(s) set, the rest at their defaults")
    for s in settings_mod.TABLE:
        mark = "*" if s.name in config else " "
        print(f"{mark} {s.key}={values[s.name]}")
    return 0
