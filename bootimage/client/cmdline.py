"""``slate.*`` settings from the kernel command line (or the same as flags, for tests)."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.errors import UsageError

# Where the boot environment carries the appliance's client certificate: an extra cpio
# archive the appliance puts before the initrd it serves (appliance/http/pinned.py).
PIN = "/etc/slate/appliance.pem"


@dataclass(frozen=True)
class Settings:
    url: str  # the appliance, e.g. http://10.0.0.1:8080: chunks (and the API without api=)
    job: str
    token: str
    api: str | None = None  # the client channel over TLS, e.g. https://10.0.0.1:8444
    pin: str = PIN  # the certificate api= must present (PEM)
    mac: str | None = None  # the boot NIC (iPXE's ${net0/mac}); None = do not touch the net
    disk: str | None = None  # a path bypasses discovery (tests: a sparse file, a loop device)
    give_up_after: float | None = None  # seconds; None = the job's setting
    workers: int = 8  # chunk transfers in flight; bench/client_bench.py: 8 beats 4 here
    console: bool = True  # draw a progress bar on the console
    after: str | None = None  # overrides the job's reboot|poweroff|none (tests: none)
    # "disks": print what udev says about the disks, then stop; "smart": print what
    # smartctl says, then run the job if one is given (else stop)
    dump: str | None = None


def parse_cmdline(text: str) -> dict[str, str]:
    """``slate.key=value`` words of a kernel command line, keys without the prefix."""
    found: dict[str, str] = {}
    for word in shlex.split(text, posix=True):
        key, sep, value = word.partition("=")
        if key.startswith("slate.") and sep:
            found[key.removeprefix("slate.")] = value
    return found


def settings_from(values: dict[str, str]) -> Settings:
    if values.get("dump"):  # a diagnostic boot: no job needed
        values = {"url": "http://-", "job": "-", "token": "-", **values}
    missing = [k for k in ("url", "job", "token") if not values.get(k)]
    if missing:
        raise UsageError(
            f"the kernel command line lacks slate.{', slate.'.join(missing)}",
            hint="boot this environment from the appliance's iPXE script, which sets them",
        )
    try:
        return Settings(
            url=values["url"].rstrip("/"),
            job=values["job"],
            token=values["token"],
            api=values.get("api", "").rstrip("/") or None,
            pin=values.get("pin") or PIN,
            mac=values.get("mac") or None,
            disk=values.get("disk") or None,
            give_up_after=float(values["give_up_after"]) if "give_up_after" in values else None,
            workers=int(values.get("workers", "8")),
            console=values.get("console", "1") != "0",
            after=values.get("after") or None,
            dump=values.get("dump") or None,
        )
    except ValueError as exc:
        raise UsageError(f"bad slate.* value on the kernel command line: {exc}") from exc


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python3 -m bootimage.client")
    parser.add_argument("--cmdline", metavar="FILE", help="read slate.* from FILE (/proc/cmdline)")
    parser.add_argument("--url")
    parser.add_argument("--job")
    parser.add_argument("--token")
    parser.add_argument("--api", help="the client API over TLS (https://ADDR:PORT)")
    parser.add_argument("--pin", help=f"the certificate --api must present (default {PIN})")
    parser.add_argument("--mac", help="bring up the NIC with this MAC using DHCP")
    parser.add_argument("--disk", help="target disk or file (bypasses discovery)")
    parser.add_argument("--give-up-after", type=float, help="seconds the appliance may be away")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--no-console", action="store_true", help="no progress bar")
    parser.add_argument("--after", choices=("reboot", "poweroff", "none"))
    parser.add_argument(
        "--dump",
        choices=("disks", "smart"),
        help="print udev's disk facts or smartctl's JSON of every disk, then run the job if"
        " one is given (else stop)",
    )
    args = parser.parse_args(argv)
    values: dict[str, str] = {}
    if args.cmdline or not (args.url or args.dump):
        with open(args.cmdline or "/proc/cmdline") as f:
            values = parse_cmdline(f.read())
    flags = {
        "url": args.url,
        "job": args.job,
        "token": args.token,
        "api": args.api,
        "pin": args.pin,
        "mac": args.mac,
        "disk": args.disk,
        "give_up_after": args.give_up_after,
        "workers": args.workers,
        "after": args.after,
        "dump": args.dump,
    }
    values.update({k: str(v) for k, v in flags.items() if v is not None})
    if args.no_console:
        values["console"] = "0"
    return settings_from(values)
