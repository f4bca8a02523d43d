"""The appliance in one process: DHCP, TFTP, DNS and HTTP composed around one database.

Each service owns its sockets and takes plain constructor arguments; this module wires
them: the DHCP boot hook asks the inventory and the boot decision (``decide``) what a
machine boots, TFTP serves the boot files (plus a generated ``grub/grub.cfg`` for the
Secure Boot chain), DNS answers for the appliance and leased machines (full mode), and
HTTP serves boot scripts, the boot environment and image chunks.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from appliance import db, metrics
from appliance.boot.chainload import Chainload
from appliance.config import Layout
from appliance.dhcp.leases import bound_at, bound_ip
from appliance.district.readthrough import ReadThrough
from appliance.dns import DnsServer, Resolver
from appliance.errors import SlateError
from appliance.machines.queries import fixed_addresses, names_by_mac
from appliance.periodic import Periodic
from appliance.settings import Settings
from appliance.store import Store
from appliance.store.library import check_format as check_store_format
from appliance.tftp import TftpServer

if TYPE_CHECKING:
    from flask import Flask

    from appliance.roomcast import Roomcast

log = logging.getLogger("slate.serve")

# TFTP root file -> where Debian installs it (ipxe, shim-signed, grub-efi-amd64-signed).
BOOT_FILES: dict[str, Path] = {
    "undionly.kpxe": Path("/usr/lib/ipxe/undionly.kpxe"),
    "snponly.efi": Path("/usr/lib/ipxe/snponly.efi"),
    "ipxe.efi": Path("/usr/lib/ipxe/ipxe.efi"),
    "shimx64.efi": Path("/usr/lib/shim/shimx64.efi.signed"),
    "grubx64.efi": Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
}
REQUIRED_BOOT_FILES = ("undionly.kpxe", "snponly.efi")
GRUB_CFG = "grub/grub.cfg"
# grub/grub.cfg-52:54:00:12:34:56 — what the bootstrap grub.cfg asks for, by MAC.
GRUB_MAC_CFG = re.compile(r"^grub/grub\.cfg-([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})$")
BOOTENV_FILES = {"bootenv/vmlinuz": "vmlinuz", "bootenv/initrd.img": "initrd.img"}
# Debian's signed grubnetx64 has tftp built in but no http module, and under Secure
# Boot it cannot load one: the whole grub path (config, kernel, initramfs) is TFTP.
GRUB_BOOTSTRAP = (
    "# Slate: load this machine's boot decision, by MAC\n"
    "source $prefix/grub.cfg-${net_default_mac}\n"
)


class Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def populate_tftp_root(root: Path, sources: dict[str, Path] | None = None) -> list[str]:
    """Copy the boot files into ``root`` (copies, not links: nothing may point out of
    the root).  Returns the names present; missing optional files are logged."""
    root.mkdir(parents=True, exist_ok=True)
    present = []
    for name, src in (sources or BOOT_FILES).items():
        dest = root / name
        if not src.exists():
            if name in REQUIRED_BOOT_FILES:
                raise SlateError(
                    f"boot file {src} is missing",
                    hint="install the Debian package ipxe (./run install does)",
                )
            log.warning("%s is missing: %s is not served", src, name)
            continue
        st = src.stat()
        if not (dest.is_file() and not dest.is_symlink() and _same(dest.stat(), st)):
            tmp = dest.with_name(f".{name}.tmp")
            shutil.copyfile(src, tmp)  # follows the symlink /usr/lib/ipxe/ipxe.efi
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            tmp.replace(dest)
        present.append(name)
    return present


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def dns_names(conn: sqlite3.Connection, settings: Settings) -> dict[str, str]:
    """Names DNS answers for: the appliance, reserved hosts, and bound leases."""
    names: dict[str, str] = {}
    hosts = names_by_mac(conn)
    leases = bound_at(conn, time.time())
    rows = [(hosts.get(mac, hostname), ip) for mac, hostname, ip in leases]
    rows += fixed_addresses(conn)
    for name, ip in rows:
        name = (name or "").lower()
        if _LABEL.match(name):  # a client's DHCP host name may be anything
            names[name] = ip
    names[settings.name] = settings.address
    return names


class Housekeeping(Periodic):
    """Every ``interval`` seconds: fail the jobs whose machine went silent
    (:meth:`appliance.jobs.Jobs.expire_stale`), so the console never shows a job
    "running" on a machine that lost power hours ago; create the jobs of recurring
    schedules that are due (appliance.backups.schedules); prune the images a capture
    finished for by their retention rules, then gc (appliance.backups.prune)."""

    def __init__(
        self,
        layout: Layout,
        connect: Callable[[], sqlite3.Connection],
        interval: float = 30.0,
        settings: Settings | None = None,
    ) -> None:
        super().__init__("housekeeping", interval)
        self.layout = layout
        self.connect = connect  # a db.ThreadConnections: this thread's connection, kept
        self.settings = settings
        self._store: Store | None = None  # made in the housekeeping thread

    def run_once(self) -> list[Any]:
        from appliance.jobs import Jobs

        expired = Jobs(self.connect(), self.layout).expire_stale()
        for job in expired:
            log.warning("job %d (%s) failed: %s", job.id, job.host_name, job.reason)
        self.run_backups()
        return expired

    def run_backups(self, now: datetime | None = None) -> None:
        """Scheduled jobs, then retention; ``now`` is a test clock."""
        from appliance.backups import prune
        from appliance.backups.schedules import Schedules
        from appliance.machines.power import waker

        try:
            Schedules(self.connect(), self.layout).run_once(now, wake=waker(self.settings))
        except Exception:  # one broken schedule must not stop retention (nor the loop)
            log.exception("running the schedules failed")
        if self._store is None:
            self._store = Store(self.layout, self.connect)
        for result in prune.after_captures(self._store):
            if result.removed:
                log.info("retention of %s (%s) removed %s", result.image, result.rules,
                         ", ".join(result.removed))  # fmt: skip


class Appliance:
    """The composition root of ``slate serve``: it builds every service, starts them
    (:meth:`start`) and stops them (:meth:`stop`).  The services share one connection
    per thread (:class:`appliance.db.ThreadConnections`); the HTTP layer gets what it
    serves from as an :class:`appliance.http.context.HttpContext`, the multicast service
    (:class:`appliance.roomcast.Roomcast`, built once at start) included."""

    def __init__(self, layout: Layout, settings: Settings) -> None:
        self.layout = layout
        self.settings = settings
        check_store_format(layout.store)  # a newer library: refused before migrating
        self.db = db.ThreadConnections(layout.db)
        self.db.prepare()  # create + migrate once, up front
        self.store = Store(layout, self.db)  # the image library, on the same connections
        # Versions being restored while they arrive from a district library: the HTTP
        # routes and the roomcast sender read their chunks through it.
        self.readthrough = ReadThrough(self.store, layout, self.db)
        self.services: list[tuple[str, Service]] = []
        self.roomcast: Roomcast | None = None  # made at start, stopped at stop
        self._app: Flask | None = None  # one Flask app behind the HTTP and console listeners
        self.chainload = Chainload()  # settings.ipxe_rom_chainload (appliance/boot/chainload.py)

    # --- composition --------------------------------------------------------------

    def start(self) -> None:
        """Start every service; if one fails, stop those already started and re-raise."""
        s = self.settings
        populate_tftp_root(self.layout.tftp_root)
        builders: list[tuple[str, Callable[[], Service]]] = [
            ("roomcast", self._roomcast),
            ("http", self._http),
            *([("client-tls", self._client_tls)] if s.client_tls_port else []),
            *([("console", self._console)] if s.console_listen else []),
            ("tftp", self._tftp),
            ("housekeeping", lambda: Housekeeping(self.layout, self.db, settings=s)),
            ("library-sync", self._library_sync),
            ("notify", self._notifier),
        ]
        if s.dns_enabled:
            builders.append(("dns", self._dns))
        if s.dhcp != "off":
            builders.append(("dhcp", self._dhcp))
        try:
            for name, build in builders:
                service = build()
                try:
                    service.start()
                except OSError as exc:
                    raise SlateError(
                        f"{name} could not listen on {s.address}: {exc}",
                        hint="is another server (dnsmasq, tftpd, a web server) using the port?",
                    ) from exc
                self.services.append((name, service))
        except BaseException:
            self.stop()
            raise
        log.info(
            "serving on %s (%s), DHCP %s, HTTP %s, TFTP port %d%s",
            s.interface,
            s.address,
            s.dhcp,
            s.url,
            s.tftp_port,
            ", DNS" if s.dns_enabled else "",
        )

    def stop(self) -> None:
        while self.services:
            name, service = self.services.pop()
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", name)

    def _library_sync(self) -> Service:
        from appliance.district.service import LibrarySync

        return LibrarySync(self.layout, self.db, self.settings.library_sync_interval)

    def _tftp(self) -> Service:
        s = self.settings
        return TftpServer(
            self.layout.tftp_root, s.address, s.tftp_port, generator=self._tftp_generated
        )

    def _tftp_generated(self, name: str, client_ip: str) -> bytes | Path | None:
        """Files of the Secure Boot chain that are not in the TFTP root.  (Every read
        request passes here first: the machine's timeline gets the file it asked for.)"""
        from appliance.machines import timeline

        conn = self.db()
        mac = timeline.mac_for_ip(conn, client_ip)
        if mac:
            timeline.record(conn, mac, "tftp", f"TFTP {name} to {client_ip}",
                            file=name, address=client_ip)  # fmt: skip
        self.chainload.fetched(name, client_ip)  # undionly.kpxe: see boot_hook
        if name == GRUB_CFG:
            return GRUB_BOOTSTRAP.encode()
        match = GRUB_MAC_CFG.match(name)
        if match:
            return self._grub_cfg(match.group(1).lower(), client_ip).encode()
        if name in BOOTENV_FILES:
            from appliance.http.listeners import served_bootenv

            config = self._app.config if self._app is not None else {}
            path = served_bootenv(self.layout, BOOTENV_FILES[name], config)
            return path if path.is_file() else None
        return None

    def _grub_cfg(self, mac: str, client_ip: str) -> str:
        """The machine's boot decision as a grub.cfg loading everything over TFTP."""
        from appliance.boot.decide import Machine
        from appliance.boot.plan import plan_boot
        from appliance.boot.render import grub_device, render_grub
        from appliance.http.listeners import client_api_url
        from appliance.jobs import Jobs

        s = self.settings
        machine = Machine(mac, "uefi", ip=client_ip)
        spec = plan_boot(Jobs(self.db(), self.layout), machine, s.unknown_policy)
        api = client_api_url(s.url, self._app.config) if self._app is not None else None
        text = render_grub(spec, s.url, api)
        return text.replace(grub_device(s.url) + "/", f"(tftp,{s.address})/")

    def _dns(self) -> Service:
        s = self.settings
        resolver = Resolver(
            lambda: dns_names(self.db(), s), s.domain, s.network, upstream=s.upstream_dns
        )
        return DnsServer(resolver, s.address, s.dns_port)

    def _roomcast(self) -> Service:
        """The multicast service, one for the process; the HTTP context is handed it."""
        from appliance.http.context import make_roomcast

        self.roomcast = make_roomcast(self.settings, self.layout, self.store, self.db,
                                      self.readthrough.path_of)  # fmt: skip
        return self.roomcast

    def _http(self) -> Service:
        from appliance.http.server import HttpServer

        # With a console listener, the imaging network gets only the machines' routes.
        scope = "pxe" if self.settings.console_listen else None
        return HttpServer(self.app(), self.settings.address, self.settings.http_port, scope=scope)

    def app(self) -> Flask:
        """The one Flask app behind the HTTP, client-TLS and console listeners."""
        from appliance.http import create_app
        from appliance.http.context import HttpContext

        if self._app is None:
            context = HttpContext(
                self.layout,
                self.settings,
                connections=self.db,
                store=self.store,
                roomcast=self.roomcast,
                readthrough=self.readthrough,
            )
            self._app = create_app(self.layout, self.settings, context=context)
        return self._app

    def _client_tls(self) -> Service:
        from appliance.http.server import client_tls_server

        return client_tls_server(self.app(), self.layout.home, self.settings)

    def _console(self) -> Service:
        from appliance.http.server import console_server

        return console_server(self.app(), self.layout.home, self.settings)

    def _dhcp(self) -> Service:
        from appliance.dhcp.leases import Pool
        from appliance.dhcp.server import DhcpServer

        s = self.settings
        pools = []
        if s.dhcp == "full":
            first, last = s.pool_range
            dns = IPv4Address(s.dns or s.address) if s.dns or s.dns_enabled else None
            pools.append(
                Pool(
                    first,
                    last,
                    s.network,
                    router=IPv4Address(s.router) if s.router else None,
                    dns=(dns,) if dns else (),
                    domain=s.domain if s.dns_enabled else "",
                    lease_seconds=s.lease_time,
                )
            )
        server = DhcpServer(
            s.interface,
            s.address,
            s.dhcp,
            self.boot_hook,
            pools=pools,
            conn=db.connect(self.layout.db, migrate=False) if s.dhcp == "full" else None,
            observe=self._dhcp_seen,
        )
        metrics.source("slate_dhcp_packets_total", "result", lambda: server.stats)
        return server

    def _dhcp_seen(self, client: Any, reply: Any) -> None:
        """A boot answer sent: the machine's timeline gets its firmware and address."""
        from appliance.dhcp.options import MESSAGE_TYPES
        from appliance.machines import timeline

        if not client.firmware:  # a plain lease (full mode), not a boot
            return
        zero = IPv4Address(0)
        address = next((str(a) for a in (reply.yiaddr, client.ciaddr, client.requested_ip)
                        if a is not None and a != zero), "")  # fmt: skip
        what = MESSAGE_TYPES.get(reply.message_type or 0, "reply")
        boot_file = reply.file.rstrip(b"\0").decode("latin-1")
        firmware = client.firmware + (" (iPXE)" if client.is_ipxe else "")
        timeline.record(
            self.db(),
            client.mac,
            "dhcp-offer",
            f"DHCP {what}: {firmware}, address {address or 'from the site DHCP'},"
            f" boot {boot_file or '-'}",
            message=what,
            firmware=client.firmware,
            arch=client.arch,
            ipxe=client.is_ipxe,
            address=address,
            file=boot_file,
        )

    def _notifier(self) -> Service:
        from appliance.notify.deliver import Notifier

        return Notifier(self.db)

    # --- the boot decision, as the DHCP server's hook -------------------------------

    def boot_hook(self, client: Any) -> Any:
        """``ClientInfo -> BootTarget | None`` (appliance/dhcp/decide.py)."""
        from appliance.boot.decide import Machine, decide
        from appliance.boot.plan import facts_for
        from appliance.dhcp.decide import BootTarget
        from appliance.jobs import Jobs

        if not client.firmware:
            return None
        zero = IPv4Address(0)
        ip = str(client.ciaddr) if client.ciaddr != zero else None
        machine = Machine(client.mac, client.firmware, client.arch, ip, client.uuid or None)
        jobs = Jobs(self.db(), self.layout)
        spec = decide(machine, facts_for(jobs, machine, self.settings.unknown_policy))
        if spec is None:
            # It will never fetch a boot script (where boots are recorded): record it here.
            if client.message_type == 1:  # DISCOVER: once per boot, not per packet
                jobs.inventory.record_seen(
                    machine.mac, machine.firmware, machine.arch, machine.uuid or "", ip or ""
                )
            return None
        s = self.settings
        return BootTarget.for_http(
            s.address,
            s.http_port,
            client.mac,
            efi_file=s.efi_boot_file,
            secure_boot=s.secure_boot,
            http_url=f"http://{s.address}:{s.http_port}/ipxe/{s.efi_boot_file}",
            chainload=self._rom_chainload(client),
        )

    def _rom_chainload(self, client: Any) -> bool:
        """Hand this BIOS iPXE client undionly.kpxe (``--ipxe-rom-chainload``)?"""
        if not (self.settings.ipxe_rom_chainload and client.firmware == "ipxe"):
            return False
        ip = client.requested_ip or (client.ciaddr if client.ciaddr != IPv4Address(0) else None)
        if ip is None:  # a DISCOVER: the address it leased in the ROM's round
            ip = bound_ip(self.db(), client.mac)
        return self.chainload.wants_undionly(
            str(ip) if ip is not None else None, request=client.message_type == 3
        )
