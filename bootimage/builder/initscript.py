"""The initramfs's /init: mount the kernel filesystems, start udev (which loads the
drivers this machine needs), then hand over to the client.  If the client ever returns
(it reboots or powers off itself), a shell on the console helps the technician."""

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
echo "slate: starting udev" > /dev/console
/usr/lib/systemd/systemd-udevd --daemon --resolve-names=never
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=60
python3 -m bootimage.client
echo "slate: the client stopped (exit $?); a shell follows (reboot -f to restart)" > /dev/console
exec setsid sh -c 'exec sh </dev/console >/dev/console 2>&1'
"""
