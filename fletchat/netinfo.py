"""The host's LAN addresses, for the URLs host mode prints, and the busy-port error."""

from __future__ import annotations

import ipaddress

from .model import FletChatError


class PortInUse(FletChatError, RuntimeError):
    """The web port is taken (another Flet Chat, or another server)."""


def lan_addresses(include_ipv6: bool = True) -> list[str]:
    """Usable unicast addresses of this host, IPv4 first; loopback and link-local left out.

    The same choice discovery advertises (``discovery.select_interfaces``), so the URLs printed are
    the addresses other devices know this host by.
    """
    from .discovery import select_interfaces

    _, usable = select_interfaces(None)
    return [
        a
        for a in usable
        if not ipaddress.ip_address(a).is_loopback and (include_ipv6 or ":" not in a)
    ]


def url_for(host: str, port: int, path: str = "/") -> str:
    """An http URL with IPv6 addresses bracketed."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
