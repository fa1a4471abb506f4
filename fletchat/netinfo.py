"""The host's LAN addresses, for the URLs host mode prints (and whatever else needs them)."""

from __future__ import annotations

import ipaddress

import ifaddr  # a zeroconf dependency: no extra install


class PortInUse(RuntimeError):
    """The web port is taken (another Flet Chat, or another server)."""


def lan_addresses(include_ipv6: bool = True) -> list[str]:
    """Usable unicast addresses of this host, IPv4 first; loopback and link-local left out."""
    v4: list[str] = []
    v6: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            raw = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                continue
            if addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified:
                continue
            (v4 if addr.version == 4 else v6).append(str(addr))
    out = sorted(set(v4), key=v4.index) + (sorted(set(v6), key=v6.index) if include_ipv6 else [])
    return out


def url_for(host: str, port: int, path: str = "/") -> str:
    """An http URL with IPv6 addresses bracketed."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
