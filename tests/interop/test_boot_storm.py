"""The boot storm (bench/boot_storm.py), short: 40 PXE clients against `slate serve`.

Each client does DHCP with PXE options, TFTP of the boot file, DHCP as iPXE and an
HTTP GET of its boot script.  Asserts that all of them completed; the timing and the
dnsmasq baseline are the benchmark's business, not a test's.
"""

from __future__ import annotations

from bench.boot_storm import Storm
from tests.conftest import require_root


def test_forty_machines_at_once_all_get_their_boot_script() -> None:
    require_root()
    storm = Storm()
    try:
        (run,) = storm.slate(40, 1)
    finally:
        storm.close()
    assert run["errors"] == []
    assert run["completed"] == 40
