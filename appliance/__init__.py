"""Slate: a PXE network-boot bare-metal restore appliance.

Kept import-light on purpose: the boot environment imports ``appliance.formats``
without Flask, SQLite or any of the server's services.
"""

__version__ = "0.1.0"
