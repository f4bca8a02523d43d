"""What the ``slate library`` commands share (appliance/cli/library.py and the modules
that add commands to its group): the data directory, its database, a library named or
the only one, a rate argument."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from appliance import db
from appliance.config import Layout, resolve_home
from appliance.errors import UsageError


def _layout(args: argparse.Namespace) -> Layout:
    return Layout(resolve_home(args.home))


def _conn(layout: Layout) -> sqlite3.Connection:
    return db.connect(layout.db)


def _rate(text: str) -> int:
    from appliance.units import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc} (e.g. 50M)") from None


def _library(conn: sqlite3.Connection, name: str) -> Any:
    from appliance.district import libraries

    if name:
        return libraries.get(conn, name)
    found = libraries.all_(conn)
    if len(found) != 1:
        raise UsageError(
            "which library?" if found else "no library yet",
            hint="name it with --to/--from" if found else "`slate library add` first",
        )
    return found[0]
