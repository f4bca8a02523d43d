"""Wake-on-LAN for the console: the sender is the appliance's (appliance.machines.power), which
scheduled captures and restores use too."""

from appliance.machines.power import DEFAULT_PORT, interface_broadcast, magic_packet, target, wake

__all__ = ["DEFAULT_PORT", "interface_broadcast", "magic_packet", "target", "wake"]
