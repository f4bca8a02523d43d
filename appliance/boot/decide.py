"""The boot decision: one pure function of (machine, inventory facts) → boot spec or None.

None means "stay silent": in proxy DHCP mode, beside a site's own DHCP server, an
unknown machine must not even notice us.  Nothing here does I/O; the facts are gathered
by :mod:`appliance.boot.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Firmware = Literal["bios", "uefi", "uefi-http", "ipxe", ""]
UnknownPolicy = Literal["silent", "local", "register"]
UNKNOWN_POLICIES: tuple[str, ...] = ("silent", "local", "register")
ENV_ACTIONS = frozenset({"restore", "capture", "register", "wipe"})


@dataclass(frozen=True)
class Machine:
    """A machine as seen at boot: from DHCP options or the iPXE request."""

    mac: str
    firmware: str = ""
    arch: int | None = None
    ip: str | None = None
    uuid: str | None = None


@dataclass(frozen=True)
class JobFacts:
    id: int
    action: str
    token: str


@dataclass(frozen=True)
class HostFacts:
    """What the inventory knows about one MAC at boot time.

    ``fresh_restore``: the host's last job restored its disk and it has not booted
    since — this boot must start the restored system even under a standing
    reboot-and-restore rule, or the machine would restore forever.
    """

    known: bool
    name: str = ""
    job: JobFacts | None = None
    auto_restore: str | None = None
    fresh_restore: bool = False
    unknown_policy: str = "silent"


@dataclass(frozen=True)
class BootSpec:
    """What to boot.  kind: ``env`` (the restore environment with a job), ``local``
    (the local disk), ``register`` (a menu telling how to register this machine),
    ``auto-restore`` (create a restore job of ``image`` first, then decide again)."""

    kind: Literal["env", "local", "register", "auto-restore"]
    mac: str
    name: str = ""
    job: JobFacts | None = None
    image: str | None = None


def decide(machine: Machine, facts: HostFacts) -> BootSpec | None:
    if not facts.known:
        if facts.unknown_policy == "local":
            return BootSpec("local", machine.mac)
        if facts.unknown_policy == "register":
            return BootSpec("register", machine.mac)
        return None  # silent: recorded in `seen` by the caller, never answered
    if facts.job is not None and facts.job.action in ENV_ACTIONS:
        return BootSpec("env", machine.mac, facts.name, job=facts.job)
    if facts.auto_restore and not facts.fresh_restore:
        return BootSpec("auto-restore", machine.mac, facts.name, image=facts.auto_restore)
    return BootSpec("local", machine.mac, facts.name)
