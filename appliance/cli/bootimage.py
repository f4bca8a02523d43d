"""``slate bootimage …``: build the network-boot environment (kernel + initramfs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.cli.output import add_group, add_json_flag, human_bytes, print_json, print_table
from appliance.config import Layout, resolve_home
from appliance.errors import NotFound


def register(subparsers: Any) -> None:
    _, sub = add_group(subparsers, "bootimage", "the network-boot environment: build, show")

    p = sub.add_parser("build", help="build kernel + initramfs from Debian packages (cached)")
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where downloads and the debootstrap tree are kept (default: DATA/cache)",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("show", help="what the appliance serves at /bootenv/")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)


def cmd_build(args: argparse.Namespace) -> int:
    from bootimage.builder.build import build  # the builder needs no server code

    layout = Layout(resolve_home(args.home))
    cache = Path(args.cache_dir) if args.cache_dir else layout.cache
    log = (lambda _m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    result = build(layout.bootimage, cache, log=log)
    info: dict[str, Any] = {
        "vmlinuz": str(result.vmlinuz),
        "initrd": str(result.initrd),
        "initrd_bytes": result.initrd.stat().st_size,
        "kernel": result.kernel_version,
        "key": result.key,
        "cached": result.cached,
    }
    if args.json:
        print_json(info)
    else:
        print(f"built {result.initrd} ({human_bytes(info['initrd_bytes'])}, kernel "
              f"{result.kernel_version}{', from cache' if result.cached else ''})")  # fmt: skip
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    layout = Layout(resolve_home(args.home))
    info_path = layout.bootimage / "build.json"
    if not (layout.bootimage / "initrd.img").is_file():
        raise NotFound(
            f"no boot environment in {layout.bootimage}",
            hint="build it with `slate bootimage build`",
        )
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    files = {n: (layout.bootimage / n).stat().st_size for n in ("vmlinuz", "initrd.img")}
    if args.json:
        print_json({**info, "files": files, "dir": str(layout.bootimage)})
    else:
        print_table(
            [(n, human_bytes(s)) for n, s in files.items()]
            + [("kernel", info.get("kernel", "?")), ("key", info.get("key", "?"))],
            ["item", "value"],
        )
    return 0
