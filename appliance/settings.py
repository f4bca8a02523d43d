"""Settings of the running appliance (``slate serve``).

One declarative table, :data:`TABLE`, names every setting once; the command-line flags
(``--http-port``) and environment variables (``SLATE_HTTP_PORT``) are derived from it
(mkosi style), and so are the keys of the configuration file (``/etc/slate/slate.conf``,
``HTTP_PORT=80``; :func:`read_config`, :func:`default_config`).  Precedence: flag, then
environment, then the configuration file, then the default.  Values are checked here, so
services receive plain, valid constructor arguments.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from appliance.errors import UsageError
from appliance.units import parse_rate

DHCP_MODES = ("proxy", "full", "off")
EFI_BOOT_FILES = ("snponly.efi", "ipxe.efi")
UNKNOWN_POLICIES = ("silent", "local", "register")


@dataclass(frozen=True)
class Settings:
    """Everything ``slate serve`` needs besides the data directory."""

    interface: str = ""  # required: Slate serves exactly one interface
    address: str = ""  # IPv4 of the interface; "" = look it up
    prefix: int = 0  # prefix length of the served subnet; 0 = look it up
    dhcp: str = "proxy"
    pool: str = ""  # "A-B", full mode; "" = the upper part of the subnet
    router: str = ""
    dns: str = ""  # DNS server handed out in full mode; "" = the appliance
    domain: str = "slate.lan"
    name: str = "slate"  # the appliance's own host name in DNS
    upstream_dns: str = ""  # where other names are forwarded ("" = refuse them)
    no_dns: bool = False
    dns_port: int = 53
    http_port: int = 80
    tftp_port: int = 69
    efi_boot_file: str = "snponly.efi"
    secure_boot: bool = False  # UEFI PXE gets signed shim -> grub instead of iPXE
    ipxe_rom_chainload: bool = False  # BIOS iPXE ROMs load undionly.kpxe first (full mode)
    unknown: str = ""  # "" = silent in proxy mode, local otherwise
    lease_time: int = 3600
    accel: str = "tcg"
    multicast_rate: int = 0  # bit/s of roomcast sessions; 0 = 90 % of the link's speed
    link_rate: int = 0  # bit/s of the imaging link; 0 = the NIC's, else multicast_rate / 0.9
    multicast_group: str = "239.255.83.0/24"  # sessions take their groups from here
    multicast_port: int = 5483
    igmp_query_interval: float = 60.0  # s; 0 = never act as the IGMP querier
    multicast_nice: int = -10  # the process's nice while a room session runs (0: unchanged)
    library_sync_interval: float = 300.0  # s between passes over the district subscriptions
    # A disk with more reallocated / pending sectors than these is refused before a
    # write (appliance.machines.diskhealth; a job's --ignore-disk-health writes anyway).
    disk_max_reallocated: int = 50
    disk_max_pending: int = 10
    # The console's own HTTPS listener, off the imaging network (docs/security.md), and
    # the site's certificate.
    console_listen: str = "127.0.0.1:8443"
    console_cert: str = ""  # "" = a self-signed one made in the data directory
    console_key: str = ""
    # The client channel over TLS on the imaging network (the client's API calls and
    # manifests; chunks stay on http_port); 0 = off, the client API over plain HTTP.
    client_tls_port: int = 8444
    # Where Wake-on-LAN packets go, ADDRESS[:PORT]; "" = the interface's broadcast, port 9.
    wol_target: str = ""

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.prefix}", strict=False)

    @property
    def unknown_policy(self) -> str:
        if self.unknown:
            return self.unknown
        return "silent" if self.dhcp == "proxy" else "local"

    @property
    def dns_enabled(self) -> bool:
        """DNS runs in full DHCP mode only: elsewhere the site has its own."""
        return self.dhcp == "full" and not self.no_dns

    @property
    def pool_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        if self.pool:
            first, last = self.pool.split("-")
            return ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        # Default pool: the upper half of the subnet, leaving room for static hosts.
        net = self.network
        return net.network_address + max(1, net.num_addresses // 2), net.broadcast_address - 1

    @property
    def url(self) -> str:
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{self.address}{port}"


@dataclass(frozen=True)
class Setting:
    name: str  # field of Settings
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    flag_only: bool = False  # a switch: --no-dns

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "SLATE_" + self.key

    @property
    def key(self) -> str:
        """Its key in the configuration file: ``HTTP_PORT``."""
        return self.name.upper()


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return port


def _nice(text: str) -> int:
    nice = int(text)
    if not -20 <= nice <= 19:
        raise ValueError(f"nice {nice} is out of range (-20 .. 19)")
    return nice


def _ipv4(text: str) -> str:
    return str(ipaddress.IPv4Address(text))


def _address(text: str) -> str:
    return str(ipaddress.IPv4Interface(text))  # "IP" or "IP/LEN"


def _pool(text: str) -> str:
    first, sep, last = text.partition("-")
    a, b = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
    if not sep or a > b:
        raise ValueError("expected FIRST-LAST with FIRST <= LAST")
    return f"{a}-{b}"


def _listen(text: str) -> str:
    """``ADDR:PORT`` (``[v6]:PORT``, or a bare port = 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if host != "localhost":
        host = str(ipaddress.ip_address(host))
    return f"[{host}]:{_port(port)}" if ":" in host else f"{host}:{_port(port)}"


def _count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise ValueError("expected a count, 0 or more")
    return n


def _bool(text: str) -> bool:
    if text.lower() in ("1", "yes", "true", "on"):
        return True
    if text.lower() in ("0", "no", "false", "off", ""):
        return False
    raise ValueError("expected yes or no")


TABLE: tuple[Setting, ...] = (
    Setting("interface", "network interface to serve on (bound to it only)", metavar="IF"),
    Setting("address", "IPv4 address[/len] to serve on (default: the interface's)", _address),
    Setting("dhcp", "DHCP mode: proxy (beside the site's DHCP), full, or off", choices=DHCP_MODES),
    Setting("pool", "address pool for full mode, FIRST-LAST", _pool, metavar="A-B"),
    Setting("router", "default gateway handed out in full mode", _ipv4, metavar="IP"),
    Setting("dns", "DNS server handed out in full mode (default: the appliance)", _ipv4),
    Setting("domain", "DNS domain of the imaging network (full mode)"),
    Setting("name", "host name of the appliance in DNS"),
    Setting("upstream_dns", "forward other DNS names there (default: refuse them)", _ipv4),
    Setting("no_dns", "do not run the DNS service in full mode", _bool, flag_only=True),
    Setting("dns_port", "DNS port", _port, metavar="N"),
    Setting("http_port", "HTTP port (boot scripts, boot environment, image chunks)", _port),
    Setting("tftp_port", "TFTP port", _port, metavar="N"),
    Setting("efi_boot_file", "iPXE build sent to UEFI PXE clients", choices=EFI_BOOT_FILES),
    Setting(
        "secure_boot",
        "UEFI PXE clients get the signed shim -> grub chain (Secure Boot)",
        _bool,
        flag_only=True,
    ),
    Setting(
        "ipxe_rom_chainload",
        "BIOS NICs whose ROM is iPXE load Slate's undionly.kpxe first, as plain PXE ROMs"
        " do (full DHCP mode)",
        _bool,
        flag_only=True,
    ),
    Setting("unknown", "unknown machines: silent, local or register", choices=UNKNOWN_POLICIES),
    Setting("lease_time", "DHCP lease time in seconds (full mode)", int, metavar="S"),
    Setting("accel", "QEMU accelerator for lab machines (kvm, tcg)"),
    Setting(
        "multicast_rate",
        "roomcast rate in bit/s: 900M, 1G (0 or auto = 90 %% of the link's speed)",
        parse_rate,
        metavar="RATE",
    ),
    Setting(
        "link_rate",
        "bit/s of the imaging link, which the room sessions share and chunks served by HTTP"
        " get the rest of while they run: 1G, 500M (0 or auto = the interface's speed;"
        " where it does not say, the multicast rate / 0.9)",
        parse_rate,
        metavar="RATE",
    ),
    Setting(
        "multicast_group",
        "roomcast groups come from this range (administratively scoped 239.x)",
        lambda t: _roomcast("parse_group", t),
        metavar="CIDR",
    ),
    Setting("multicast_port", "roomcast UDP port", _port, metavar="N"),
    Setting(
        "multicast_nice",
        "CPU priority (nice, -20..19) the appliance takes while a room session runs, so"
        " other work does not stall the multicast's pacing (0: unchanged)",
        _nice,
        metavar="N",
    ),
    Setting(
        "igmp_query_interval",
        "seconds between IGMP queries while roomcast runs and no other querier is heard (0: never)",
        float,
        metavar="S",
    ),
    Setting(
        "library_sync_interval",
        "seconds between passes over the district library subscriptions (docs/district.md)",
        float,
        metavar="S",
    ),
    Setting(
        "disk_max_reallocated",
        "refuse to write a disk with more reallocated sectors than this (SMART attribute 5)",
        _count,
        metavar="N",
    ),
    Setting(
        "disk_max_pending",
        "refuse to write a disk with more pending or uncorrectable sectors (NVMe: media"
        " errors) than this",
        _count,
        metavar="N",
    ),
    Setting(
        "console_listen",
        "where the web console and its JSON API listen, over HTTPS: ADDR:PORT (default"
        " 127.0.0.1:8443; a management interface's address where the site has one); every"
        " console path is 404 on the imaging network",
        _listen,
        metavar="ADDR:PORT",
    ),
    Setting(
        "console_cert", "the console's certificate (PEM; default: self-signed)", metavar="FILE"
    ),
    Setting("console_key", "the key of --console-cert (PEM)", metavar="FILE"),
    Setting(
        "client_tls_port",
        "port of the client channel over TLS on the imaging network (the restore client's"
        " API calls and manifests, pinned in the initrd served; 0 = off)",
        _port,
        metavar="N",
    ),
    Setting(
        "wol_target",
        "where Wake-on-LAN packets go, ADDRESS[:PORT] (default: the interface's broadcast"
        " address, port 9)",
        metavar="ADDR[:PORT]",
    ),
)


def _roomcast(name: str, text: str) -> Any:
    import appliance.roomcast as roomcast

    return getattr(roomcast, name)(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so the environment can fill in."""
    defaults = Settings()
    for s in TABLE:
        default = getattr(defaults, s.name)
        text = f"{s.help} (env {s.env}; default: {default if default != '' else 'auto'})"
        if s.flag_only:
            parser.add_argument(s.flag, action="store_const", const=True, default=None, help=text)
            continue
        parser.add_argument(
            s.flag, default=None, choices=s.choices or None, metavar=s.metavar, help=text
        )


@dataclass(frozen=True)
class ConfigValue:
    """One ``KEY=value`` line of the configuration file."""

    raw: str
    source: str  # "/etc/slate/slate.conf, line 3 (HTTP_PORT)"


DEFAULT_CONFIG = Path("/etc/slate/slate.conf")
BY_KEY = {s.key: s for s in TABLE}


def read_config(path: Path) -> dict[str, ConfigValue]:
    """The settings of a configuration file: ``KEY=value`` lines (``HTTP_PORT=8080``),
    ``#`` comments and blank lines; a value may be quoted ("..." or '...'); ``KEY=``
    (empty) leaves the default.  Every value is checked now, and a bad line (not
    ``KEY=value``, an unknown key, one given twice, a bad value) is refused naming its
    line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read the configuration file {path}: {exc.strerror or exc}",
            hint="`slate config default` prints one with every setting, commented out",
        ) from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"the configuration file {path} is not UTF-8 text: {exc}") from exc
    found: dict[str, ConfigValue] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        where = f"{path}, line {number}"
        if not sep or not key:
            raise UsageError(
                f"{where}: {stripped[:60]!r} is not KEY=value",
                hint="each line sets one setting, e.g. HTTP_PORT=80 (# starts a comment)",
            )
        setting = BY_KEY.get(key.upper())
        if setting is None:
            close = get_close_matches(key.upper(), BY_KEY, n=1)
            raise UsageError(
                f"{where}: unknown key {key}",
                hint=f"did you mean {close[0]}?"
                if close
                else "`slate config default` lists every key",
            )
        if setting.key in lines:
            raise UsageError(
                f"{where}: {setting.key} is set twice (first on line {lines[setting.key]})",
                hint="keep one of the two lines",
            )
        lines[setting.key] = number
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if value == "":
            continue
        entry = ConfigValue(value, f"{where} ({setting.key})")
        _parse(setting, value, entry.source)
        found[setting.name] = entry
    return found


def config_path(given: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file ``slate serve`` reads: ``--config``, else
    ``$SLATE_CONFIG``, else /etc/slate/slate.conf when it exists (else none)."""
    env = os.environ if env is None else env
    chosen = given or env.get("SLATE_CONFIG")
    if chosen:
        return Path(chosen)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def from_sources(
    args: argparse.Namespace | None = None,
    env: Mapping[str, str] | None = None,
    config: Mapping[str, ConfigValue] | None = None,
) -> Settings:
    """Settings from flags, then ``SLATE_*`` environment variables, then the
    configuration file's lines (:func:`read_config`), then defaults."""
    env = os.environ if env is None else env
    config = config or {}
    values: dict[str, Any] = {}
    address_text = ""
    for s in TABLE:
        raw = getattr(args, s.name, None) if args is not None else None
        source = s.flag
        if raw is None and s.env in env:
            raw, source = env[s.env], s.env
        if raw is None and s.name in config:
            raw, source = config[s.name].raw, config[s.name].source
        if raw is None:
            continue
        values[s.name] = _parse(s, raw, source)
        if s.name == "address":
            address_text = str(raw)
    address = values.pop("address", "")
    if address:
        iface = ipaddress.IPv4Interface(address)
        values["address"] = str(iface.ip)
        if "/" in address_text:
            values["prefix"] = iface.network.prefixlen
    return Settings(**values)


def default_config(version: str = "") -> str:
    """The configuration file with every setting documented and commented out at its
    default (``slate config default``)."""
    defaults = Settings()
    out = [
        "# /etc/slate/slate.conf: the settings of `slate serve` (slate.service).",
        "#",
        "# One KEY=value a line; # starts a comment.  A key left commented out (or given",
        "# empty, KEY=) has its default.  A flag of `slate serve` (--http-port) or an",
        "# environment variable (SLATE_HTTP_PORT) overrides the line here.  A bad line is",
        "# refused, naming its line, and the service does not start.",
    ]
    if version:
        out.append(f"# Written by `slate config default` (slate {version}).")
    for s in TABLE:
        default = getattr(defaults, s.name)
        shown = str(default) if not isinstance(default, bool) else "yes" if default else "no"
        words = s.help.replace("%%", "%")
        if s.choices and not all(c in words for c in s.choices):
            words += f" ({', '.join(s.choices)})"
        out.append("")
        out.extend(textwrap.wrap(words, width=86, initial_indent="# ", subsequent_indent="# "))
        note = "" if shown else "; required" if s.name == "interface" else "; default: auto"
        out.append(f"# flag {s.flag}, environment {s.env}{note}")
        out.append(f"#{s.key}={shown}")
    return "\n".join(out) + "\n"


def _parse(s: Setting, raw: Any, source: str) -> Any:
    if isinstance(raw, bool):
        return raw
    if s.choices and raw not in s.choices:
        raise UsageError(
            f"{source}: {raw!r} is not one of {', '.join(s.choices)}",
            hint=f"use one of: {', '.join(s.choices)}",
        )
    try:
        return s.parse(raw)
    except ValueError as exc:
        hint = f"see `slate serve --help` for {s.flag}"
        if ", line " in source:  # a line of the configuration file
            hint = f"`slate config default` documents {s.key}"
        raise UsageError(f"{source}: {raw!r} is not valid ({exc})", hint=hint) from exc


def interface_addresses(interface: str) -> list[ipaddress.IPv4Interface]:
    """IPv4 addresses of ``interface`` (``ip -j addr``) — empty if it has none."""
    proc = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", interface], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise UsageError(
            f"network interface {interface!r} does not exist",
            hint="pick one from `ip -br link` with --interface",
        )
    found = []
    for link in json.loads(proc.stdout or "[]"):
        for a in link.get("addr_info", []):
            found.append(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}"))
    return found


def resolve(settings: Settings) -> Settings:
    """Fill in the address and prefix from the interface, then check consistency."""
    if not settings.interface:
        raise UsageError(
            "no network interface given",
            hint="name the one interface to serve with --interface IF, or INTERFACE=IF in"
            " /etc/slate/slate.conf (see `ip -br addr`)",
        )
    addrs = interface_addresses(settings.interface)
    if not settings.address:
        if not addrs:
            raise UsageError(
                f"interface {settings.interface} has no IPv4 address",
                hint=f"give it one (ip addr add A/LEN dev {settings.interface}) or use --address",
            )
        settings = replace(settings, address=str(addrs[0].ip))
    mine = [a for a in addrs if str(a.ip) == settings.address]
    if not mine:
        raise UsageError(
            f"{settings.address} is not an address of interface {settings.interface}",
            hint=f"addresses there: {', '.join(str(a) for a in addrs) or 'none'}",
        )
    if not settings.prefix:
        settings = replace(settings, prefix=mine[0].network.prefixlen)
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Cross-field checks (pool inside the subnet, not containing the appliance...)."""
    if bool(settings.console_cert) != bool(settings.console_key):
        raise UsageError(
            "--console-cert and --console-key go together",
            hint="give both (the site's certificate and its key), or neither for a self-signed one",
        )
    if settings.dhcp != "full":
        return
    first, last = settings.pool_range
    net = settings.network
    if first not in net or last not in net:
        raise UsageError(
            f"pool {first}-{last} is not inside the served subnet {net}",
            hint="choose --pool within the interface's subnet",
        )
    if first <= ipaddress.IPv4Address(settings.address) <= last:
        raise UsageError(
            f"pool {first}-{last} contains the appliance's own address {settings.address}",
            hint="move --pool or --address so they do not overlap",
        )


def as_dict(settings: Settings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(settings)}
