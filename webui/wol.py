"""Wake-on-LAN for the console: the sender is the appliance's (appliance.wol), which
scheduled captures and restores use too."""

from appliance.wol import DEFAULT_PORT, interface_broadcast, magic_packet, target, wake

__all__ = ["DEFAULT_PORT", "interface_broadcast", "magic_packet", "target", "wake"]
