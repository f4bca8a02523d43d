"""The interop tier's two kinds of test file (``./run test`` runs them apart).

Files named in ALONE measure or depend on how fast this machine is right now: the
roomcast rooms (many real seats share the two cores; a starved seat leaves multicast by
design), the benchmarks' quick runs, QEMU firmware boots, WAN byte counts over shaped
links, a link held down for 30 s.  They are marked ``alone`` and run one at a time with
nothing beside them.  Every other interop file is functional (a real client, server or
peer answers, or refuses, whatever the load) and runs beside the lab tier, two files at
a time.  A new file that times anything belongs in ALONE."""

from __future__ import annotations

import pytest

ALONE = {
    "test_boot_storm.py",  # a storm of DHCP/TFTP clients, counted per second
    "test_client_bench.py",  # bench/client_bench.py --quick
    "test_client_network.py",  # a link down for 30 s mid-restore
    "test_dhcp_firmware.py",  # QEMU's iPXE ROM and OVMF, TCG
    "test_dhcp_perfdhcp.py",  # perfdhcp's rates
    "test_district.py",  # WAN bytes over tbf links, a kill -9 part-way
    "test_district_bench.py",  # bench/district_bench.py --quick
    "test_district_readthrough.py",  # a cold room of 8 seats behind a shaped WAN
    "test_room_bench.py",  # bench/room_bench.py --quick
    "test_roomcast.py",  # rooms of up to 12 seats, slow seats, a forger
    "test_roomcast_two_rooms.py",  # two rooms at once on one link budget
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in ALONE:
            item.add_marker(pytest.mark.alone)
