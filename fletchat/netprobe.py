"""What the network doctor looks at (``fletchat.doctor`` decides what it means).

All blocking socket work, run on a thread by ``gather``: the interfaces (ifaddr, plus Linux's
``/sys/class/net`` for up/down), one mDNS query for ``_fletchat._tcp.local.`` per interface with
multicast loopback on (so our own query must come back to us), everything heard on UDP 5353 for a
few seconds, then per Flet Chat that answered: a TCP connect to its peer port, a DNS query sent
straight to its address (legacy unicast mDNS, RFC 6762 6.7: it answers to our port), and the
route the OS picks for it. IPv4 only: that is what discovery uses to connect peers first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import secrets
import select
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ifaddr
from zeroconf import DNSIncoming, DNSOutgoing, DNSQuestion
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_A, _TYPE_PTR

from .discovery import SERVICE_TYPE
from .doctor import Interface, Observations, PeerProbe, Tcp, firewall_tools

MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
TCP_TIMEOUT = 2.0
UNICAST_TIMEOUT = 1.5
MAX_PEERS = 16  # probes per run: a flood of adverts must not make the doctor run for minutes
IFF_UP = 0x1


def _linux_up(name: str) -> bool:
    base = Path("/sys/class/net") / name
    try:
        flags = int((base / "flags").read_text().strip(), 16)
        state = (base / "operstate").read_text().strip()
    except (OSError, ValueError):
        return True  # not Linux, or no such file: assume up
    return bool(flags & IFF_UP) and state in ("up", "unknown")


def interfaces() -> tuple[Interface, ...]:
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):  # IPv4 (IPv6 comes as a tuple)
                found.append(
                    Interface(
                        name=str(adapter.name),
                        address=ip.ip,
                        prefix=ip.network_prefix,
                        up=_linux_up(str(adapter.name)),
                        label=str(adapter.nice_name),
                    )
                )
    return tuple(found)


SERVICES = "_services._dns-sd._udp.local."  # RFC 6763 9: every DNS-SD responder answers it


def _query(marker: str, everyone: bool = True) -> bytes:
    """A PTR query for our service (and, with ``everyone``, for all services, so any mDNS device
    answers), plus a question nobody answers that makes the packet ours alone."""
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    out.add_question(DNSQuestion(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN))
    if everyone:
        out.add_question(DNSQuestion(SERVICES, _TYPE_PTR, _CLASS_IN))
    out.add_question(DNSQuestion(f"fletchat-doctor-{marker}.local.", _TYPE_A, _CLASS_IN))
    return out.packets()[0]


def _mdns_socket(addresses: list[str]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("", MDNS_PORT))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    for address in addresses:
        mreq = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(address)
        with contextlib.suppress(OSError):  # already joined through another address
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return sock


class _Heard:
    """What came in on UDP 5353: our echo, other senders, and Flet Chat answers by instance."""

    def __init__(self, local: set[str], query: bytes) -> None:
        self.local, self.query = local, query
        self.echoed = False
        self.senders: set[str] = set()
        self.peers: dict[str, tuple[str, str, int]] = {}  # instance -> (name, address, port)

    def add(self, data: bytes, source: str) -> None:
        if data == self.query:
            self.echoed = self.echoed or (source in self.local and not source.startswith("127."))
            return
        if source not in self.local:
            self.senders.add(source)
        try:
            msg = DNSIncoming(data, (source, MDNS_PORT))
        except Exception:  # noqa: BLE001 - anything on the LAN may send garbage
            return
        if source in self.local or msg.is_query():
            return
        self._answers(msg, source)

    def _answers(self, msg: DNSIncoming, source: str) -> None:
        from zeroconf import DNSPointer, DNSService, DNSText

        from .discovery import parse_txt

        records = msg.answers()
        instances = {
            r.alias for r in records if isinstance(r, DNSPointer) and r.name == SERVICE_TYPE
        }
        ports = {r.name: r.port for r in records if isinstance(r, DNSService)}
        names = {}
        for r in records:
            if isinstance(r, DNSText) and r.name in instances:
                with contextlib.suppress(Exception):
                    names[r.name] = parse_txt(_txt_dict(r.text))["name"]
        for instance in instances:
            if instance in ports and len(self.peers) < MAX_PEERS:
                # The TXT name is validated; a raw DNS label may hold terminal escapes.
                raw = instance.split(".")[0]
                label = names.get(instance) or "".join(c for c in raw if c.isprintable())[:64]
                self.peers[instance] = (label, source, ports[instance])


def _txt_dict(raw: bytes) -> dict[bytes, bytes]:
    props, i = {}, 0
    while i < len(raw):
        length = raw[i]
        key, _, value = raw[i + 1 : i + 1 + length].partition(b"=")
        props[key] = value
        i += 1 + length
    return props


def listen(usable: list[Interface], seconds: float, local: set[str]) -> _Heard:
    """Send our query on every interface (twice), and record everything heard until ``seconds``.
    ``local``: every address of this device (loopback too: a Flet Chat running here answers on
    127.0.0.1 as well, and Linux delivers any joined group to our socket), never a peer."""
    query = _query(secrets.token_hex(4))
    heard = _Heard(local, query)
    try:
        sock = _mdns_socket([i.address for i in usable])
    except OSError:
        return heard  # cannot even listen: nothing is received
    with sock:
        deadline = time.monotonic() + seconds
        sends = [time.monotonic(), time.monotonic() + min(1.0, seconds / 2)]
        while (left := deadline - time.monotonic()) > 0:
            if sends and time.monotonic() >= sends[0]:
                sends.pop(0)
                for iface in usable:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.IPPROTO_IP,
                            socket.IP_MULTICAST_IF,
                            socket.inet_aton(iface.address),
                        )
                        sock.sendto(query, (MDNS_GROUP, MDNS_PORT))
            wait = min(left, max(0.0, sends[0] - time.monotonic())) if sends else left
            ready, _, _ = select.select([sock], [], [], wait)
            if ready:
                with contextlib.suppress(OSError):
                    data, (source, _port) = sock.recvfrom(9000)
                    heard.add(data, source)
    return heard


def tcp_probe(address: str, port: int, timeout: float = TCP_TIMEOUT) -> Tcp:
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return Tcp.OPEN
    except ConnectionRefusedError:
        return Tcp.REFUSED
    except TimeoutError:
        return Tcp.TIMEOUT
    except OSError as err:
        if err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return Tcp.UNREACHABLE
        return Tcp.TIMEOUT


def unicast_mdns_probe(address: str, timeout: float = UNICAST_TIMEOUT) -> bool:
    """Does ``address`` answer a DNS query sent straight to it (from a port that is not 5353)?"""
    query = _query(secrets.token_hex(4), everyone=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(query, (address, MDNS_PORT))
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return False
            with contextlib.suppress(OSError):
                _data, (source, _port) = sock.recvfrom(9000)
                if source == address:
                    return True
    return False


def route_interface(address: str, ifaces: tuple[Interface, ...]) -> str:
    """The interface the OS would send to ``address`` through ("" when there is no route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((address, MDNS_PORT))
            local = sock.getsockname()[0]
        except OSError:
            return ""
    return next((i.name for i in ifaces if i.address == local), "")


def on_local_subnet(address: str, ifaces: tuple[Interface, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(
        ip in ipaddress.ip_network(f"{i.address}/{i.prefix}", strict=False)
        for i in ifaces
        if i.up and not i.is_loopback
    )


def probe_peer(
    name: str, address: str, port: int, ifaces: tuple[Interface, ...], via_mdns: bool
) -> PeerProbe:
    tcp = tcp_probe(address, port)
    return PeerProbe(
        name=name,
        address=address,
        port=port,
        tcp=tcp,
        unicast_mdns=tcp is not Tcp.OPEN and unicast_mdns_probe(address),
        route_interface=route_interface(address, ifaces),
        on_local_subnet=on_local_subnet(address, ifaces),
        via_mdns=via_mdns,
    )


def _probe_all(found: list[tuple[str, str, int, bool]], ifaces: tuple[Interface, ...]):
    """Probe peers in parallel: 16 unreachable adverts (a prank on the LAN) cost seconds, not a
    minute. Only packet source addresses are probed, never addresses a record claims (a forged
source still gets one connect and one query per run: docs/security.md)."""
    if not found:
        return ()
    with ThreadPoolExecutor(max_workers=min(8, len(found))) as pool:
        return tuple(pool.map(lambda f: probe_peer(f[0], f[1], f[2], ifaces, f[3]), found))


def gather_blocking(
    peers: tuple[tuple[str, int], ...], listen_seconds: float, peer_port: int
) -> Observations:
    ifaces = interfaces()
    usable = [i for i in ifaces if i.up and not i.is_loopback]
    common = {"firewall_tools": firewall_tools(), "peer_port": peer_port}
    if not usable:
        return Observations(ifaces, False, (), (), **common)
    local = {i.address for i in ifaces} | {"127.0.0.1"}
    heard = listen(usable, listen_seconds, local)
    found = [(n, a, p, True) for n, a, p in heard.peers.values()]
    found += [(f"{a}:{p}", a, p, False) for a, p in peers[:MAX_PEERS]]
    return Observations(
        interfaces=ifaces,
        own_query_echoed=heard.echoed,
        mdns_heard_from=tuple(sorted(heard.senders)),
        peers=_probe_all(found, ifaces),
        multicast_route_interface=route_interface(MDNS_GROUP, ifaces),
        **common,
    )


async def gather(
    peers: tuple[tuple[str, int], ...] = (), listen_seconds: float = 3.0, peer_port: int = 8551
) -> Observations:
    """``gather_blocking`` on a thread, so the event loop (and the UI) keeps running."""
    return await asyncio.to_thread(gather_blocking, peers, listen_seconds, peer_port)
