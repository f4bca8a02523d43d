"""The undionly.kpxe path for machines whose NIC ROM is iPXE already.

A plain PXE ROM (no user class) is handed ``undionly.kpxe`` over TFTP; undionly's iPXE
then DHCPs again with user class ``iPXE`` and is handed its boot script.  A NIC whose
ROM *is* iPXE (QEMU's, some thin clients') skips that chain: it gets the script at once.
``slate serve --ipxe-rom-chainload`` makes such a ROM take the plain-PXE path anyway —
for a ROM too old or too limited to trust, and for the lab, whose only BIOS ROMs are
iPXE.  Both DHCP rounds look the same (the ROM and undionly send the same vendor class,
user class and option 175), so what tells them apart is what the machine did: a BIOS
iPXE client that fetched ``undionly.kpxe`` by TFTP in the last :data:`WINDOW` seconds is
undionly, and gets the script; its DHCPREQUEST uses that up, so its next boot starts
from the ROM again.  Full DHCP mode only: the TFTP request names an address, and the
lease says whose it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

UNDIONLY = "undionly.kpxe"
WINDOW = 120.0  # s from the TFTP transfer to undionly's DHCP (it takes ~2 s)


class Chainload:
    """Which BIOS iPXE clients are running the undionly.kpxe they were handed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._fetched: dict[str, float] = {}
        self._lock = threading.Lock()

    def fetched(self, name: str, ip: str) -> None:
        """TFTP is serving ``name`` to ``ip``."""
        if name == UNDIONLY:
            with self._lock:
                self._fetched[ip] = self._clock()

    def wants_undionly(self, ip: str | None, *, request: bool) -> bool:
        """True: hand this BIOS iPXE client undionly.kpxe (it is the NIC's ROM).
        False: it is undionly, hand it the script (a DHCPREQUEST ends the round)."""
        with self._lock:
            now = self._clock()
            self._fetched = {a: t for a, t in self._fetched.items() if now - t < WINDOW}
            if ip is None or ip not in self._fetched:
                return True
            if request:
                del self._fetched[ip]
            return False
