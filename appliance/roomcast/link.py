"""The appliance's imaging link as roomcast sees it: which interface holds the serving
address, its speed, the packets its transmit queue dropped, and the token bucket that
paces chunks served by HTTP while room sessions run (see :mod:`.budget`)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.pacing import TokenBucket

SYS_NET = Path("/sys/class/net")
HTTP_WIRE = 1514 / 1448  # a full TCP segment (timestamps) as a frame: what the link carries
HTTP_BURST = 64 * 1024  # bytes: the HTTP bucket's depth (one paced block or a few)


def interface_of(address: str) -> str | None:
    """The name of the interface holding the IPv4 ``address`` (``ip -j addr``)."""
    try:
        out = subprocess.run(
            ["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True
        ).stdout
        for link in json.loads(out or "[]"):
            if any(a.get("local") == address for a in link.get("addr_info", [])):
                return str(link["ifname"])
    except (OSError, ValueError, subprocess.CalledProcessError, KeyError):
        pass
    return None


def interface_speed(ifname: str) -> int:
    """The interface's speed in bit/s (sysfs), 0 when unknown (a veth, a link down)."""
    try:
        speed = int((SYS_NET / ifname / "speed").read_text())
    except (OSError, ValueError):
        return 0
    return speed * 1_000_000 if speed > 0 else 0


def parse_tc_drops(text: str) -> int | None:
    """Packets dropped by the transmit queue in ``tc -s -j qdisc show dev IF``'s output:
    the sum of the root qdiscs' ``drops`` (a multiqueue or classful root counts its
    children's, which are therefore not added again; ingress/clsact are not roots).
    None when the output has no qdisc with statistics."""
    try:
        qdiscs = json.loads(text or "[]")
    except ValueError:
        return None
    if not isinstance(qdiscs, list):
        return None
    with_stats = [q for q in qdiscs if isinstance(q, dict) and isinstance(q.get("drops"), int)]
    roots = [q for q in with_stats if q.get("root")]
    if not roots:  # a tc that does not mark roots: those without a parent
        roots = [q for q in with_stats if "parent" not in q and q.get("kind") != "ingress"]
    if not roots:
        return None
    return sum(int(q["drops"]) for q in roots)


def read_tx_drops(ifname: str) -> int | None:
    """Packets ``ifname`` dropped on transmit so far: its root qdisc's drops (a full
    queue) plus the device's own ``tx_dropped`` (a device without a queue, such as a
    veth with noqueue, drops there; the two counters never count the same packet).
    Without tc, only the latter; None when neither can be read."""
    qdisc: int | None = None
    try:
        out = subprocess.run(
            ["tc", "-s", "-j", "qdisc", "show", "dev", ifname],
            capture_output=True, text=True, timeout=2,
        )  # fmt: skip
        if out.returncode == 0:
            qdisc = parse_tc_drops(out.stdout)
    except (OSError, subprocess.SubprocessError):
        pass
    device: int | None = None
    with contextlib.suppress(OSError, ValueError):
        device = int((SYS_NET / ifname / "statistics" / "tx_dropped").read_text())
    if qdisc is None and device is None:
        return None
    return (qdisc or 0) + (device or 0)


class DropCounter:
    """:func:`read_tx_drops` of one interface, read at most once per ``every`` seconds
    (each session's status asks once a second; tc costs ~4 ms a call)."""

    def __init__(
        self,
        ifname: Callable[[], str | None],
        read: Callable[[str], int | None] = read_tx_drops,
        every: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ifname, self.read, self.every, self.clock = ifname, read, every, clock
        self._lock = threading.Lock()
        self._at = -1e18
        self._value: int | None = None

    def __call__(self, *, fresh: bool = False) -> int | None:
        with self._lock:
            now = self.clock()
            if fresh or now - self._at >= self.every:
                name = self.ifname()
                self._value = self.read(name) if name else None
                self._at = now
            return self._value


class HttpPacer(TokenBucket):
    """The one token bucket that every block of every chunk body served by HTTP passes
    while room sessions run, shared by all the serving threads.  Its rate is bit/s of
    frames on the wire (a block's bytes times :data:`HTTP_WIRE`); 0 = not paced."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        burst: int = HTTP_BURST,
    ) -> None:
        super().__init__(0, burst=burst, wire=HTTP_WIRE, clock=clock, sleep=sleep)
