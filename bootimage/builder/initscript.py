"""The initramfs's /init: mount the kernel filesystems, set the network sysctls below,
start udev (which loads the drivers this machine needs), then hand over to the client.
If the client ever returns (it reboots or powers off itself), a shell on the console
helps the technician."""

# Kernel settings of the boot environment, written by /init before the network is up
# (bench/client_bench.py sets the same in the namespace its client runs in).
SYSCTLS: dict[str, str] = {
    # No TCP timestamp option: 12 more payload bytes in every 1500-byte frame (1460
    # instead of 1448, +0.8 % of a restore's rate on a 1 Gbit/s LAN).  What they
    # protect against is not a risk here: PAWS guards sequence numbers that wrap while
    # old segments still linger (34 s at 1 Gbit/s; a LAN holds a segment for
    # milliseconds), and every chunk is checked against its SHA-256 anyway.
    "net.ipv4.tcp_timestamps": "0",
}

_SYSCTL_LINES = "\n".join(
    f"echo {value} > /proc/sys/{key.replace('.', '/')}" for key, value in SYSCTLS.items()
)

INIT = r"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PYTHONPATH=/opt/slate PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
@SYSCTLS@
echo "slate: starting udev" > /dev/console
/usr/lib/systemd/systemd-udevd --daemon --resolve-names=never
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=60
python3 -m bootimage.client
echo "slate: the client stopped (exit $?); a shell follows (reboot -f to restart)" > /dev/console
exec setsid sh -c 'exec sh </dev/console >/dev/console 2>&1'
""".replace("@SYSCTLS@", _SYSCTL_LINES)
