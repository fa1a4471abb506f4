"""A real LAN on one machine: network namespaces joined by a Linux bridge.

Why: zeroconf, multicast and "is this peer reachable" bugs only show up on a real network stack, and
loopback hides them (every process shares one address, multicast loops back). Each test host here is
its own network namespace with its own address on a private /24, joined to the others through a
bridge that has no address in the root namespace, so test traffic cannot leave the test LAN.

Usage::

    from tests.conftest import need
    from tests.lan import lan_available, virtual_lan

    def test_something():
        need(*lan_available())              # skip on a laptop without root, fail under CI
        with virtual_lan(3) as lan:         # everything is deleted on exit, even on failure
            h1, h2, h3 = lan                # Host: .name (netns), .ip, .ip6, .iface ("eth0")
            h3.block_multicast()            # mDNS can no longer reach or leave h3; unicast still can
            h2.shape(mbit=1000)             # h2's link: 1000 Mbit/s each way (tc, needs tc_available())
            proc = h1.popen([sys.executable, "-c", "..."])   # runs inside h1's namespace
            peer = h2.spawn_json([sys.executable, "tests/nsrun_discovery.py", "peer", ...])
            event = peer.wait_for(lambda e: e["ev"] == "found", timeout=10)  # JSON lines on stdout
            peer.send("quit")                                # a line on its stdin
            h2.run(["ip", "addr"])                           # run to completion, output captured

Children get the repo on ``PYTHONPATH`` and the repo as cwd, so ``import fletchat`` works in them.

Names are unique per run (``fcbrXXXX`` for the bridge, ``fcXXXX-hN`` for the namespaces), so
concurrent test runs do not collide. Processes started with ``Host.popen`` are killed at teardown.

Blocking multicast: ``Host.block_multicast()`` (or ``Lan.block_all_multicast()``) moves the host
behind a bridge "trunk" whose ports have ``mcast_flood off``; checked to stop mDNS discovery both
ways while unicast TCP keeps working. ``ip link set eth0 multicast off``, a blackhole route for
224.0.0.251 and ``tc`` filters do NOT work here; ``nft``/``iptables`` are not installed. Details in
``Lan.block_multicast``.

Shaping a link: ``Host.shape(mbit)`` (or ``Lan.shape(host, mbit)``) gives a host a link of that rate
in both directions, as a real LAN has (gigabit Ethernet moves about 117 MB/s of TCP payload, Wi-Fi
far less), where a bare veth pair moves whatever the CPU can. It needs ``tc`` (``tc_available()``);
details in ``Lan.shape``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.timing import scaled

ROOT = Path(__file__).resolve().parent.parent
IFACE = "eth0"  # the name of each host's interface inside its namespace


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, timeout=scaled(20)
    )


@cache
def lan_available() -> tuple[bool, str]:
    """Can this process build a namespaced LAN? Returns ``(ok, reason)`` for ``need()``."""
    if not sys.platform.startswith("linux"):
        return False, "network namespaces need Linux"
    if os.geteuid() != 0:
        return False, "network namespaces need root (run the LAN tests as root or in CI)"
    if shutil.which("ip") is None:
        return False, "the `ip` command (iproute2) is not installed"
    probe = f"fcprobe-{secrets.token_hex(3)}"
    try:
        res = _ip("netns", "add", probe, check=False)
        if res.returncode != 0:
            return False, f"cannot create a network namespace: {res.stderr.strip()}"
        res = _ip("-n", probe, "link", "set", "lo", "up", check=False)
        if res.returncode != 0:
            return False, f"cannot configure a network namespace: {res.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return True, ""


def _tc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tc", *args], capture_output=True, text=True, check=check, timeout=scaled(20)
    )


@cache
def tc_available() -> tuple[bool, str]:
    """Can this process shape a host's link (``Lan.shape``)? ``(ok, reason)`` for ``need()``."""
    ok, reason = lan_available()
    if not ok:
        return ok, reason
    if shutil.which("tc") is None:
        return False, "the `tc` command (iproute2) is not installed"
    probe = f"fcprobe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
        res = _tc("-n", probe, "qdisc", "add", "dev", "lo", "root", *tbf_args(100), check=False)
        if res.returncode != 0:
            return False, f"cannot add a tbf qdisc (kernel without sch_tbf?): {res.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return True, ""


LINK_QUEUE_MS = 10  # what a shaped link queues at most (a switch port's or a NIC's buffer)
GSO_BYTES = 64 * 1024  # the largest packet a veth hands tc (TSO/GSO), for the burst's floor


def tbf_args(mbit: float, queue_ms: float = LINK_QUEUE_MS) -> list[str]:
    """``tc`` arguments for a token bucket of ``mbit`` Mbit/s (SI: 1000 = 10^9 bit/s).

    The burst is 1 ms of the rate, and never below two GSO packets: a smaller bucket makes tbf cut
    every 64 KiB packet a veth hands it into MTU-sized ones (CPU a bench should not spend), or drop
    it. ``latency`` bounds the FIFO in front of the link (``queue_ms`` of the rate, plus the burst).
    One TCP sender keeps its own queue under TCP's small-queue limit (two 64 KiB GSO packets per
    socket: a 136 KB backlog at p50 was measured on a 200 Mbit/s uplink, 5.5 ms, about 1 ms at
    1000 Mbit/s); the queue fills up only where flows from several hosts meet (a receiver's port).
    """
    rate_bytes = mbit * 1_000_000 / 8
    burst = max(2 * GSO_BYTES, int(rate_bytes / 1000))
    return ["tbf", "rate", f"{mbit:g}mbit", "burst", str(burst), "latency", f"{queue_ms:g}ms"]


def child_env() -> dict[str, str]:
    """Environment for Python children: the repo on ``PYTHONPATH`` so ``import fletchat`` works."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class JsonProc:
    """A child that prints one JSON object per line on stdout; lines are collected on a thread.

    ``wait_for(pred)`` returns the first event (old or new) matching ``pred``; ``send(line)`` writes a
    line to its stdin. Non-JSON lines are kept as ``{"ev": "text", "text": ...}``.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"ev": "text", "text": line.rstrip("\n")}
            if not isinstance(event, dict):
                event = {"ev": "text", "text": line.rstrip("\n")}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "eof", "t": time.time()})
            self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any] | None:
        """The first event satisfying ``pred``, waiting up to ``scaled(timeout)`` s (a limit, see
        tests/timing.py); None on timeout/EOF."""
        deadline = time.monotonic() + scaled(timeout)
        seen = 0
        with self._cond:
            while True:
                for event in self.events[seen:]:
                    if pred(event):
                        return event
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or (self.events and self.events[-1].get("ev") == "eof"):
                    return None
                self._cond.wait(left)

    def matching(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if pred(e)]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr_text(self) -> str:
        """Its stderr, once it has exited (stderr goes to a pipe only if it was asked for)."""
        if self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()


@dataclass
class Host:
    """One machine on the virtual LAN: a namespace with ``lo`` and ``eth0`` up."""

    name: str  # the network namespace
    ip: str  # its IPv4 address on the LAN
    ip6: str = ""  # its IPv6 ULA on the LAN ("" when built with ipv6=False)
    prefix: int = 24
    iface: str = IFACE
    port: str = ""  # its veth end in the root namespace (a bridge port)
    mac: str = ""
    mbit: float | None = None  # its link's rate each way once shaped (``shape``); None = unshaped
    lan: Lan | None = field(default=None, repr=False)
    procs: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)

    def cmd(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped so it runs inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen[str]:
        """Start a process inside the namespace (text mode, stdout piped, repo on PYTHONPATH).

        It is killed at LAN teardown if still running.
        """
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("text", True)
        kwargs.setdefault("env", child_env())
        kwargs.setdefault("cwd", str(ROOT))
        proc = subprocess.Popen(self.cmd(argv), **kwargs)
        self.procs.append(proc)
        return proc

    def spawn_json(self, argv: Sequence[str], **kwargs) -> JsonProc:
        """``popen`` with stdin/stdout piped, wrapped in a ``JsonProc`` that collects JSON lines."""
        kwargs.setdefault("stdin", subprocess.PIPE)
        return JsonProc(self.popen(argv, **kwargs))

    def run(self, argv: Sequence[str], timeout: float = 20, check: bool = True, **kwargs):
        """Run a command inside the namespace to completion (``timeout`` scaled); returns
        ``CompletedProcess``."""
        timeout = scaled(timeout)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("env", child_env())
        kwargs.setdefault("cwd", str(ROOT))
        return subprocess.run(self.cmd(argv), timeout=timeout, check=check, **kwargs)

    def block_multicast(self) -> None:
        """Filter all multicast to and from this host, as some Wi-Fi networks do; unicast still flows.

        See ``Lan.block_multicast``.
        """
        assert self.lan is not None
        self.lan.block_multicast(self)

    def shape(self, mbit: float, queue_ms: float = LINK_QUEUE_MS) -> None:
        """Give this host a link of ``mbit`` Mbit/s each way. See ``Lan.shape``."""
        assert self.lan is not None
        self.lan.shape(self, mbit, queue_ms)

    def unshape(self) -> None:
        """Back to the bare veth (no qdisc, as fast as the CPU goes)."""
        assert self.lan is not None
        self.lan.unshape(self)

    def kill_all(self) -> None:
        """Kill what ``popen`` started here (by pid), and reap it."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(timeout=scaled(5))
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()


def _random_subnet() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.213.{secrets.randbelow(256)}.0/24")


class Lan(list[Host]):
    """The hosts of one virtual LAN (a list, so ``h1, h2 = lan`` works) plus the bridge behind them."""

    def __init__(self, tag: str, bridge: str) -> None:
        super().__init__()
        self.tag = tag
        self.bridge = bridge
        self.links: list[str] = [bridge]  # root-namespace links to delete at teardown
        self.blocked: set[str] = set()

    def block_multicast(self, host: Host) -> None:
        """Stop multicast (mDNS included) between ``host`` and the rest of the LAN, both ways.

        How: ``host``'s port moves off the main bridge onto a small bridge of its own, joined to the
        main one by a veth "trunk" whose two ends have the bridge port flag ``mcast_flood off``. A
        bridge floods multicast frames only to ports with that flag on, so multicast stops at the
        trunk in both directions, while unicast and broadcast (ARP) still cross it. IPv6 neighbour
        discovery is multicast too, so permanent neighbour entries keep IPv6 unicast working.

        Methods that do NOT work here (checked): ``ip link set eth0 multicast off`` and
        ``ip route add blackhole 224.0.0.251/32`` inside the namespace (the kernel sends multicast on
        a socket's chosen interface without a route lookup); ``tc`` filters (this kernel has no tc
        classifiers or actions); ``nft``/``iptables`` are not installed.
        """
        if host.name in self.blocked:
            return
        k = host.name.rsplit("-h", 1)[1]
        sub, trunk, trunk_peer = f"fcbr{self.tag}m{k}", f"fc{self.tag}t{k}", f"fc{self.tag}u{k}"
        _ip("link", "add", sub, "type", "bridge", "mcast_snooping", "0")
        self.links.append(sub)
        _ip("link", "add", trunk, "type", "veth", "peer", "name", trunk_peer)
        self.links.append(trunk)
        _ip("link", "set", trunk, "master", self.bridge)
        _ip("link", "set", trunk_peer, "master", sub)
        for port in (trunk, trunk_peer):
            subprocess.run(
                ["bridge", "link", "set", "dev", port, "mcast_flood", "off"],
                check=True,
                capture_output=True,
                text=True,
            )
        _ip("link", "set", host.port, "master", sub)
        for link in (sub, trunk, trunk_peer):
            _ip("link", "set", link, "up")
        self.blocked.add(host.name)
        if host.ip6:
            for other in self:
                if other is host or not other.ip6:
                    continue
                for a, b in ((host, other), (other, host)):
                    _ip(
                        "-n",
                        a.name,
                        "neigh",
                        "replace",
                        b.ip6,
                        "lladdr",
                        b.mac,
                        "dev",
                        a.iface,
                        "nud",
                        "permanent",
                    )

    def block_all_multicast(self) -> None:
        """The whole LAN filters multicast: nobody can discover anybody through mDNS."""
        for host in self:
            self.block_multicast(host)

    def shape(self, host: Host, mbit: float, queue_ms: float = LINK_QUEUE_MS) -> None:
        """Give ``host`` a link of ``mbit`` Mbit/s in both directions, like a host on a switch.

        Uplink: a token-bucket qdisc (``tbf_args``) on ``host.iface`` inside its namespace, so
        whatever it sends leaves at that rate. Downlink: the same on its veth end in the root
        namespace (``host.port``, the bridge port facing it), so whatever the bridge forwards to it
        arrives at that rate, from however many hosts. Calling it again replaces the rate;
        ``unshape`` removes both qdiscs, and they go with the LAN anyway (the namespace and the
        veth are deleted). Only qdiscs this kernel has (tbf; no netem, fq or fq_codel): a rate
        and a bounded FIFO queue, no added delay or loss. Needs ``tc_available()``.
        """
        ok, reason = tc_available()
        if not ok:
            raise RuntimeError(reason)
        args = tbf_args(mbit, queue_ms)
        _tc("-n", host.name, "qdisc", "replace", "dev", host.iface, "root", *args)
        _tc("qdisc", "replace", "dev", host.port, "root", *args)
        host.mbit = mbit

    def unshape(self, host: Host) -> None:
        """Remove what ``shape`` added (both directions); nothing happens on an unshaped host."""
        _tc("-n", host.name, "qdisc", "del", "dev", host.iface, "root", check=False)
        _tc("qdisc", "del", "dev", host.port, "root", check=False)
        host.mbit = None

    def shape_all(self, mbit: float, queue_ms: float = LINK_QUEUE_MS) -> None:
        """Every host on a link of ``mbit`` Mbit/s each way."""
        for host in self:
            self.shape(host, mbit, queue_ms)


@contextlib.contextmanager
def virtual_lan(n: int, subnet: str | None = None, ipv6: bool = True) -> Iterator[Lan]:
    """Build a bridge and ``n`` namespaced hosts on it; delete all of it on exit.

    Host k (1-based) gets address ``subnet.(10+k)``; the subnet defaults to a random
    ``10.213.X.0/24``. With ``ipv6`` each host also gets ``fd13:X::(10+k)/64`` (a ULA), so
    dual-stack code paths are exercised. The bridge has no address: the root namespace is not on
    the LAN. Multicast needs no extra route: mDNS sockets pick their interface explicitly, and the
    bridge floods link-local groups (snooping is switched off anyway).
    """
    ok, reason = lan_available()
    if not ok:
        raise RuntimeError(reason)
    tag = secrets.token_hex(2)
    net = ipaddress.IPv4Network(subnet) if subnet else _random_subnet()
    third = int(str(net.network_address).split(".")[2])
    lan = Lan(tag, f"fcbr{tag}")
    namespaces: list[str] = []
    try:
        _ip("link", "add", lan.bridge, "type", "bridge", "mcast_snooping", "0")
        _ip("link", "set", lan.bridge, "up")
        for k in range(1, n + 1):
            ns = f"fc{tag}-h{k}"
            veth = f"fc{tag}v{k}"
            _ip("netns", "add", ns)
            namespaces.append(ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", IFACE, "netns", ns)
            lan.links.append(veth)
            _ip("link", "set", veth, "master", lan.bridge)
            _ip("link", "set", veth, "up")
            addr = str(net.network_address + 10 + k)
            # canonical text ("fd13::12", not "fd13:0::12"): the form every address is reported in
            addr6 = str(ipaddress.IPv6Address(f"fd13:{third:x}::{10 + k}")) if ipv6 else ""
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/{net.prefixlen}", "dev", IFACE)
            if ipv6:
                # nodad: usable at once instead of after duplicate address detection (~2 s).
                _ip("-n", ns, "addr", "add", f"{addr6}/64", "dev", IFACE, "nodad")
            _ip("-n", ns, "link", "set", IFACE, "up")
            mac = json.loads(_ip("-n", ns, "-j", "link", "show", IFACE).stdout)[0]["address"]
            lan.append(
                Host(name=ns, ip=addr, ip6=addr6, prefix=net.prefixlen, port=veth, mac=mac, lan=lan)
            )
        yield lan
    finally:
        for host in lan:
            host.kill_all()
        for ns in namespaces:
            _ip("netns", "del", ns, check=False)
        for link in reversed(lan.links):  # veths mostly vanish with their namespace; be sure
            _ip("link", "del", link, check=False)


MAIN = str(ROOT / "main.py")


def start_headless_peer(
    host: Host, name: str, data_dir: Path, *extra: str, timeout: float = 30.0
) -> JsonProc:
    """``main.py --headless`` on ``host``, returned once it printed its ``ready`` line."""
    peer = host.spawn_json(
        [sys.executable, MAIN, "--headless", "--name", name, "--data-dir", str(data_dir), *extra]
    )
    ready = peer.wait_for(lambda e: e.get("event") == "ready", timeout=timeout)
    assert ready is not None, f"{name} did not start: {peer.stderr_text()}"
    return peer
