"""The restore/capture client that runs inside the network-boot environment.

It runs on Debian's python3 with only the standard library, pyudev and zstandard, and
imports ``appliance.formats`` (the image format) and ``appliance.errors`` — nothing
else of the server.  ``python3 -m bootimage.client`` is the payload of the initramfs's
/init; the same command runs on a host against a file or loop device for tests.
"""
