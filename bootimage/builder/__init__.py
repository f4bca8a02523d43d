"""Builder of the network-boot environment: Debian's kernel plus an initramfs made from
a cached debootstrap tree, the kernel modules for common storage and NICs, and the
restore/capture client (``bootimage.client``)."""
