"""The network doctor: when nobody is found, name the cause and say what to do.

``uv run main.py --doctor`` (or ``python -m fletchat.doctor [--json]``), and ``await check(...)`` for
the UI. Two halves: ``fletchat.netprobe`` looks at the network (interfaces, an mDNS query for
``_fletchat._tcp`` and everything heard for a few seconds, then TCP and a unicast mDNS query to every
Flet Chat that answered, and the route the OS picks to each) and returns ``Observations``;
``diagnose`` here turns them into findings. ``diagnose`` is pure, so each cause is unit-tested
from observations, and each is also made for real on namespaced hosts (tests/test_doctor.py).

How causes are told apart:

- **no usable interface**: nothing but loopback is up with an address.
- **a VPN takes the route**: the OS sends to the mDNS group or to a peer through a tunnel interface
  (tun*, wg*, utun*, ppp*, tailscale*, ...), so LAN traffic never reaches the LAN.
- **this device drops multicast**: our own mDNS query, sent with multicast loopback on, never came
  back to our listening socket (a local firewall on UDP 5353, or an Android multicast lock).
- **the network drops multicast**: our query comes back, but no other device says anything over
  mDNS at all (some Wi-Fi routers, and some phones even with the lock, drop it).
- **a firewall on the peer**: it answered mDNS, but TCP to its peer port is refused (a reject
  rule, or nothing listening), or is filtered while a direct (unicast) mDNS query is answered.
- **AP / client isolation**: it answered over multicast, but nothing sent to it directly arrives
  (neither TCP nor unicast mDNS): the access point keeps its clients apart.
- **another subnet**: its address is outside every subnet of this device, and TCP fails.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import asdict, dataclass, field
from enum import StrEnum

MDNS_PORT = 5353
DEFAULT_PEER_PORT = 8551

# Interface names that are tunnels: a route through one leaves the LAN.
VPN_PREFIXES = (
    "tun", "tap", "wg", "utun", "ppp", "ipsec", "tailscale", "zt", "nordlynx", "proton",
    "gpd", "vpn", "wintun", "mullvad",
)  # fmt: skip
VPN_WORDS = ("vpn", "wireguard", "tap-windows", "tunnel", "wintun", "tailscale", "zerotier")


class Cause(StrEnum):
    OK = "ok"
    NO_INTERFACE = "no-interface"
    VPN_ROUTE = "vpn-route"
    MULTICAST_LOCAL = "multicast-not-received"
    MULTICAST_NETWORK = "multicast-dropped-by-network"
    NO_PEERS = "no-flet-chat-answered"
    FIREWALL = "firewall"
    AP_ISOLATION = "ap-isolation"
    OTHER_SUBNET = "other-subnet"


class Tcp(StrEnum):
    OPEN = "open"
    REFUSED = "refused"  # RST: a reject rule, or nothing listening
    TIMEOUT = "timeout"  # no answer: dropped on the way or by the peer
    UNREACHABLE = "unreachable"  # the OS has no route / the host is unreachable


@dataclass(frozen=True)
class Interface:
    name: str
    address: str
    prefix: int
    up: bool = True
    label: str = ""  # the OS's friendly name (Windows), for the VPN check

    @property
    def is_loopback(self) -> bool:
        return self.address.startswith("127.") or self.address == "::1"

    @property
    def is_vpn(self) -> bool:
        return is_vpn_interface(self.name, self.label)


@dataclass(frozen=True)
class PeerProbe:
    """One Flet Chat that answered our mDNS query (or was given with --peer), and how it answers."""

    name: str
    address: str
    port: int
    tcp: Tcp
    unicast_mdns: bool  # answered a query sent straight to its address
    route_interface: str  # where the OS sends packets for it ("" when it has no route)
    on_local_subnet: bool
    via_mdns: bool = True


@dataclass(frozen=True)
class Observations:
    interfaces: tuple[Interface, ...]
    own_query_echoed: bool
    mdns_heard_from: tuple[str, ...]  # other addresses heard on UDP 5353 (any service)
    peers: tuple[PeerProbe, ...]
    multicast_route_interface: str = ""  # where the OS sends to 224.0.0.251 by default
    system: str = field(default_factory=platform.system)
    firewall_tools: tuple[str, ...] = ()  # ufw / firewall-cmd found on this machine
    peer_port: int = DEFAULT_PEER_PORT  # this device's own peer port


@dataclass(frozen=True)
class Finding:
    cause: Cause
    summary: str  # one line that names the cause
    fix: str  # what to do, with the exact command where there is one
    peer: str = ""  # which peer it is about, if any


@dataclass(frozen=True)
class Diagnosis:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.cause is Cause.OK for f in self.findings)

    @property
    def causes(self) -> tuple[Cause, ...]:
        return tuple(f.cause for f in self.findings)

    def text(self) -> str:
        lines = []
        for f in self.findings:
            mark = "ok  " if f.cause is Cause.OK else "FIX "
            lines.append(f"{mark}{f.summary}")
            if f.fix:
                lines.extend(f"    {line}" for line in f.fix.splitlines())
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "findings": [asdict(f) for f in self.findings]})


def is_vpn_interface(name: str, label: str = "") -> bool:
    lowered = name.lower()
    return lowered.startswith(VPN_PREFIXES) or any(w in label.lower() for w in VPN_WORDS)


def firewall_command(
    system: str, port: int, proto: str = "tcp", tools: tuple[str, ...] = ()
) -> str:
    """The command that opens ``port`` for incoming traffic on this OS, as a person would type it."""
    if system == "Linux":
        if "ufw" in tools:
            return f"sudo ufw allow {port}/{proto}"
        if "firewall-cmd" in tools:
            return (
                f"sudo firewall-cmd --permanent --add-port={port}/{proto} && "
                "sudo firewall-cmd --reload"
            )
        return f"sudo iptables -I INPUT -p {proto} --dport {port} -j ACCEPT"
    if system == "Windows":
        return (
            f'netsh advfirewall firewall add rule name="Flet Chat {proto.upper()} {port}" '
            f"dir=in action=allow protocol={proto.upper()} localport={port}"
        )
    if system == "Darwin":
        fw = "/usr/libexec/ApplicationFirewall/socketfilterfw"
        return f'sudo {fw} --add "$(which python3)" && sudo {fw} --unblockapp "$(which python3)"'
    if system == "Android":
        return "Android has no firewall of its own: turn off firewall or ad-blocking apps (they run as a VPN)."
    return f"allow incoming {proto.upper()} port {port} in this system's firewall"


def _peer_finding(p: PeerProbe, obs: Observations) -> Finding:
    who = f"{p.name} ({p.address}:{p.port})"
    if p.tcp is Tcp.OPEN:
        return Finding(Cause.OK, f"{who} is reachable.", "", p.name)
    if p.route_interface and is_vpn_interface(p.route_interface):
        return Finding(
            Cause.VPN_ROUTE,
            f"Packets for {who} go into the VPN interface {p.route_interface}, not to the LAN.",
            "Disconnect the VPN, or turn on its 'allow LAN / local network access' option.",
            p.name,
        )
    if not p.on_local_subnet:
        nets = ", ".join(f"{i.address}/{i.prefix}" for i in _usable(obs)) or "none"
        return Finding(
            Cause.OTHER_SUBNET,
            f"{who} is on another subnet than this device ({nets}), and cannot be reached.",
            "Put both devices on the same network (same Wi-Fi, not the guest one), or fix the "
            "router so the subnets can reach each other and start with --peer ADDRESS:PORT.",
            p.name,
        )
    command = firewall_command(obs.system, p.port, "tcp", obs.firewall_tools)
    if p.tcp is Tcp.REFUSED or p.unicast_mdns:
        how = "refuses connections" if p.tcp is Tcp.REFUSED else "does not answer (filtered)"
        return Finding(
            Cause.FIREWALL,
            f"{who} answers mDNS but its peer port {p.port} {how}: a firewall on that device "
            "blocks Flet Chat.",
            f"On that device, allow incoming TCP {p.port} (the command on {obs.system}):\n"
            f"{command}",
            p.name,
        )
    return Finding(
        Cause.AP_ISOLATION,
        f"{who} is seen over multicast, but nothing sent to it directly arrives (TCP and "
        "unicast mDNS): the Wi-Fi access point isolates its clients (AP / client isolation, "
        "usual on guest networks).",
        "Use a network without client isolation, or turn isolation off in the router's Wi-Fi "
        "settings. Host mode on one device does not help: the others cannot reach it either.",
        p.name,
    )


def _usable(obs: Observations) -> list[Interface]:
    return [i for i in obs.interfaces if i.up and not i.is_loopback]


def diagnose(obs: Observations) -> Diagnosis:
    """The findings for these observations, most basic cause first (pure)."""
    if not _usable(obs):
        return Diagnosis((Finding(
            Cause.NO_INTERFACE,
            "This device has no usable network interface (only loopback is up).",
            "Connect to Wi-Fi or Ethernet, then start Flet Chat again.",
        ),))  # fmt: skip
    findings: list[Finding] = []
    if obs.multicast_route_interface and is_vpn_interface(obs.multicast_route_interface):
        findings.append(Finding(
            Cause.VPN_ROUTE,
            f"Multicast (mDNS) goes into the VPN interface {obs.multicast_route_interface}.",
            "Disconnect the VPN, or turn on its 'allow LAN / local network access' option.",
        ))  # fmt: skip
    if not obs.own_query_echoed:
        udp = firewall_command(obs.system, MDNS_PORT, "udp", obs.firewall_tools)
        android = (
            " On Android, the Wi-Fi multicast lock was not granted."
            if obs.system == "Android"
            else ""
        )
        findings.append(Finding(
            Cause.MULTICAST_LOCAL,
            "This device does not receive multicast: its own mDNS query never came back."
            + android,
            f"Allow incoming UDP {MDNS_PORT} (mDNS) in this device's firewall:\n{udp}",
        ))  # fmt: skip
    findings.extend(_peer_finding(p, obs) for p in obs.peers)
    if not obs.peers and obs.own_query_echoed:
        if obs.mdns_heard_from:
            findings.append(Finding(
                Cause.NO_PEERS,
                f"mDNS works (heard {len(obs.mdns_heard_from)} other device(s)), but no other "
                "Flet Chat answered.",
                "Start Flet Chat on the other devices, on this same network (not a guest Wi-Fi).",
            ))  # fmt: skip
        else:
            findings.append(Finding(
                Cause.MULTICAST_NETWORK,
                "No other device answered over mDNS at all: this network drops multicast (some "
                "Wi-Fi routers do, and some phones even with the multicast lock), or nobody else "
                "is on it.",
                f"Connect directly instead: on the other device run Flet Chat, then here "
                f"uv run main.py --peer THEIR-ADDRESS:{obs.peer_port} (or FLETCHAT_PEERS).",
            ))  # fmt: skip
    return Diagnosis(tuple(findings))


def firewall_tools() -> tuple[str, ...]:
    return tuple(t for t in ("ufw", "firewall-cmd") if shutil.which(t))


async def check(
    peers: tuple[tuple[str, int], ...] = (),
    listen_seconds: float = 3.0,
    peer_port: int = DEFAULT_PEER_PORT,
) -> Diagnosis:
    """Look at the network and diagnose it: what the UI calls (a few seconds, off the loop)."""
    from .netprobe import gather

    return diagnose(await gather(peers, listen_seconds, peer_port))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(
        prog="python -m fletchat.doctor", description="Why does Flet Chat find nobody?"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--listen", type=float, default=3.0, help="seconds to listen for mDNS")
    parser.add_argument(
        "--peer", action="append", default=[], metavar="HOST:PORT", help="also check this peer"
    )
    args = parser.parse_args(argv)
    peers = []
    for item in args.peer:
        host, _, port = item.rpartition(":")
        peers.append((host.strip("[]"), int(port)))
    diagnosis = asyncio.run(check(tuple(peers), args.listen))
    print(diagnosis.to_json() if args.json else diagnosis.text(), flush=True)
    return 0 if diagnosis.ok else 1


if __name__ == "__main__":
    # Through the package's module, not this __main__ copy: netprobe builds fletchat.doctor's types.
    from fletchat.doctor import main as _main

    raise SystemExit(_main())
