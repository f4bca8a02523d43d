"""Machines: the inventory of hosts and rooms, what each machine reported, its timeline.

This package is the only owner of the ``hosts`` and ``host_events`` tables: no SQL on
them lives elsewhere (``tests/unit/test_machines_owner.py`` checks; a job query of
:mod:`appliance.jobs` may still join ``hosts``).

* :mod:`.inventory` — :class:`Inventory`, every write on hosts and rooms, machines seen;
* :mod:`.queries` — the reads on hosts and host events other modules need;
* :mod:`.timeline` — the per-machine timeline of boot events (every write on host_events);
* :mod:`.history` — the per-machine history of jobs, as rows or CSV;
* :mod:`.facts` — hardware facts, identity by SMBIOS UUID, disk health, power requests;
* :mod:`.diskhealth` — the verdict on a disk's SMART record, pure;
* :mod:`.identity` — host name, machine-id and SSH host keys of a restored system;
* :mod:`.power` — Wake-on-LAN.
"""

from __future__ import annotations

from appliance.machines.inventory import (
    RULE_TRANSPORTS,
    Host,
    Inventory,
    Room,
    Seen,
    normalize_mac,
    parse_disk_hint,
    parse_image_spec,
)

__all__ = [
    "RULE_TRANSPORTS",
    "Host",
    "Inventory",
    "Room",
    "Seen",
    "normalize_mac",
    "parse_disk_hint",
    "parse_image_spec",
]
