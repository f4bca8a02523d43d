"""The lab: isolated networks in namespaces and QEMU machines, for tests, `slate lab`
and `slate demo`.  Nothing here touches a host interface."""
