"""Slate's DHCP service: codec (packet, options), decisions (decide), leases, server.

Modes: ``proxy`` (default; answers PXE/iPXE clients with boot information only, beside
a site's DHCP server), ``full`` (an isolated imaging network: pool, leases,
reservations) and ``off``.  See docs/dhcp.md.  The public names for the composition are
:class:`~appliance.dhcp.server.DhcpServer`, :class:`~appliance.dhcp.decide.ClientInfo`,
:class:`~appliance.dhcp.decide.BootTarget` and :class:`~appliance.dhcp.leases.Pool`.
"""
