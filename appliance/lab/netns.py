"""Network namespaces, bridges and links for tests and the lab.

Everything created here is named with a unique prefix and removed by name on
``close()`` (or leaving the ``with`` block) — never by pattern.  Traffic stays inside
namespaces this module created.

Typical topology (``Lab``)::

    netns <prefix>-net:  bridge br0 ──┬── veth to <prefix>-srv (eth0, server address)
                                      ├── veth to <prefix>-c1  (eth0, a client)
                                      └── tap devices for QEMU machines
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Sequence
from typing import Any

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"


def _run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kw)


class Netns:
    """One network namespace.  ``run``/``popen`` execute inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        _run([IP, "netns", "add", name])
        self.run([IP, "link", "set", "lo", "up"])

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return [IP, "netns", "exec", self.name, *cmd]

    def run(
        self, cmd: Sequence[str], check: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(cmd), check=check, **kw)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.argv(cmd), **kw)

    def delete(self) -> None:
        subprocess.run([IP, "netns", "delete", self.name], capture_output=True)


class Lab:
    """A bridge in its own namespace plus any number of attached namespaces / taps.

    ``lab.add_host("srv", "10.77.0.1/24")`` returns a :class:`Netns` whose ``eth0`` is
    on the bridge.  ``lab.add_tap()`` returns the name of a tap on the bridge, created
    inside the bridge namespace, for a QEMU machine started with ``lab.net.argv``.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"sl{secrets.token_hex(3)}"
        self.hosts: dict[str, Netns] = {}
        self.ports: dict[str, str] = {}  # role -> its bridge port (in the bridge namespace)
        self.taps: list[str] = []
        self._n = 0
        self.net = Netns(f"{self.prefix}-net")
        try:
            self.net.run(
                [IP, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"]
            )
            self.net.run([IP, "link", "set", "br0", "up"])
        except BaseException:
            self.net.delete()
            raise

    def add_host(self, role: str, address: str | None = None, *, mac: str | None = None) -> Netns:
        """A namespace with ``eth0`` attached to the bridge (address optional, ``A/len``)."""
        ns = Netns(f"{self.prefix}-{role}")
        self.hosts[role] = ns
        self._n += 1
        outer = f"v{self._n}{self.prefix[-4:]}"
        _run([IP, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns.name])
        _run([IP, "link", "set", outer, "netns", self.net.name])
        self.net.run([IP, "link", "set", outer, "master", "br0", "up"])
        self.ports[role] = outer
        if mac:
            ns.run([IP, "link", "set", "eth0", "address", mac])
        ns.run([IP, "link", "set", "eth0", "up"])
        if address:
            # `brd +` matters: multicast receivers hang without a broadcast address.
            ns.run([IP, "addr", "add", address, "brd", "+", "dev", "eth0"])
        return ns

    def attach(self, ns: Netns, ifname: str, address: str) -> None:
        """Give ``ns`` (a namespace of another Lab, say) one more leg, ``ifname``, on
        this bridge, with ``address`` (``A/len``).  The leg goes when either namespace
        does (a veth pair dies whole); the kernel removes a deleted namespace in the
        background, so a leg of the same name made a moment ago is waited for."""
        deadline = time.monotonic() + 10
        while ns.run([IP, "link", "show", ifname], check=False).returncode == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ns.name} still has a {ifname} from before")
            time.sleep(0.1)
        self._n += 1
        outer = f"x{self._n}{self.prefix[-4:]}"
        _run([IP, "link", "add", outer, "type", "veth", "peer", "name", ifname, "netns", ns.name])
        _run([IP, "link", "set", outer, "netns", self.net.name])
        self.net.run([IP, "link", "set", outer, "master", "br0", "up"])
        ns.run([IP, "link", "set", ifname, "up"])
        ns.run([IP, "addr", "add", address, "brd", "+", "dev", ifname])

    def add_tap(self) -> str:
        """A tap device on the bridge (inside the bridge namespace), for QEMU."""
        name = f"tap{len(self.taps)}"
        self.net.run([IP, "tuntap", "add", "dev", name, "mode", "tap"])
        self.net.run([IP, "link", "set", name, "master", "br0", "up"])
        self.taps.append(name)
        return name

    def close(self) -> None:
        for ns in self.hosts.values():
            ns.delete()
        self.hosts.clear()
        self.net.delete()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
