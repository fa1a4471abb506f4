"""Whom to dial and when: wanted addresses, backoff, giving up, and what mDNS may make us dial.

Pure (time and randomness passed in). The mesh runs one dial task per ``Wanted`` and asks the
``Dialer`` what to do after each attempt.

Sources of addresses and how far each is believed:

- MANUAL (``--peer``): dialed for the life of the mesh, whatever happens.
- DISCOVERY (an mDNS advert, i.e. anyone on the LAN): never loopback, unspecified, multicast or
  one of this host's own addresses; at most ``max_discovered`` at once and
  ``max_ports_per_host`` per IP. When full, an address that never connected and failed most makes
  room, so a flood of fake adverts cannot hide a real newcomer.
- GOSSIP (a connected peer said so): given up after ``GOSSIP_MAX_FAILURES`` failures.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from fletchat.protocol import GOSSIP_MAX_FAILURES, RECONNECT_MAX, RECONNECT_MIN, backoff_delay

MAX_WANTED_ADDRESSES = 256  # addresses we keep dialing, from every source
MAX_DISCOVERED = 64  # of those, from mDNS adverts
MAX_PORTS_PER_HOST = 4  # mDNS adverts for one IP address


class Source(StrEnum):
    MANUAL = "manual"
    DISCOVERY = "discovery"
    GOSSIP = "gossip"


class Outcome(StrEnum):
    """How one dial attempt ended."""

    UP = "up"  # handshaken and registered (then closed later)
    DUPLICATE = "duplicate"  # handshaken, but another connection to that peer was kept
    SELF = "self"  # the address is this peer
    BLOCKED = "blocked"
    FAILED = "failed"


@dataclass(eq=False)
class Wanted:
    host: str
    port: int
    peer_id: str | None
    source: Source
    sticky: bool  # given without a peer id (--peer): ``forget`` leaves it alone
    failures: int = 0
    connected: bool = False  # ever reached a handshake through this address

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True)
class WantResult:
    added: Wanted | None = None  # start a dial task for it
    kicked: Wanted | None = None  # already wanted: retry now rather than after the backoff
    dropped: tuple[Wanted, ...] = ()  # stop dialing these
    refused: str = ""  # why the address is not dialed ("" = it is)


def never_dial(host: str, own: frozenset[str]) -> str:
    """Why an advertised address must not be dialed ("" when it may be)."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return "not an IP address"
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
        return "loopback, unspecified or multicast address"
    if str(ip) in own:
        return "one of this host's own addresses"
    return ""


@dataclass(eq=False)
class Dialer:
    me_id: str
    own_addresses: frozenset[str] = frozenset()
    reconnect: tuple[float, float] = (RECONNECT_MIN, RECONNECT_MAX)
    max_wanted: int = MAX_WANTED_ADDRESSES
    max_discovered: int = MAX_DISCOVERED
    max_ports_per_host: int = MAX_PORTS_PER_HOST
    wanted: dict[tuple[str, int], Wanted] = field(default_factory=dict)

    def want(self, host: str, port: int, peer_id: str | None, source: Source) -> WantResult:
        if peer_id == self.me_id:
            return WantResult(refused="this peer itself")
        if source is Source.DISCOVERY and (why := never_dial(host, self.own_addresses)):
            return WantResult(refused=why)
        dropped: list[Wanted] = []
        if peer_id is not None and source is not Source.GOSSIP:
            # a fresh advert replaces what gossip said about that peer
            dropped = [w for w in self.wanted.values()
                       if w.peer_id == peer_id and w.source is Source.GOSSIP and w.addr != (host, port)]
            for w in dropped:
                del self.wanted[w.addr]
        existing = self.wanted.get((host, port))
        if existing is not None:
            self._upgrade(existing, peer_id, source)
            return WantResult(kicked=existing, dropped=tuple(dropped))
        room = self._room_for(host, source)
        if isinstance(room, str):
            return WantResult(dropped=tuple(dropped), refused=room)
        if room is not None:
            del self.wanted[room.addr]
            dropped.append(room)
        want = Wanted(host, port, peer_id, source, sticky=source is Source.MANUAL and not peer_id)
        self.wanted[want.addr] = want
        return WantResult(added=want, dropped=tuple(dropped))

    def _upgrade(self, want: Wanted, peer_id: str | None, source: Source) -> None:
        if peer_id is not None:
            want.peer_id = peer_id
        if source is Source.MANUAL or (source is Source.DISCOVERY and want.source is Source.GOSSIP):
            want.source = source

    def _room_for(self, host: str, source: Source) -> Wanted | str | None:
        """None: there is room. A ``Wanted``: evict it first. A string: refused, why."""
        if source is Source.MANUAL:
            return None
        if source is Source.GOSSIP:
            return "too many addresses" if len(self.wanted) >= self.max_wanted else None
        found = [w for w in self.wanted.values() if w.source is Source.DISCOVERY]
        if sum(1 for w in found if w.host == host) >= self.max_ports_per_host:
            return f"too many adverts for {host}"
        if len(found) < self.max_discovered and len(self.wanted) < self.max_wanted:
            return None
        never = [w for w in found if not w.connected and w.failures > 0]
        if not never:
            return "too many adverts"
        return max(never, key=lambda w: w.failures)

    def forget(self, peer_id: str) -> list[Wanted]:
        """Discovery lost ``peer_id``: stop dialing its non-sticky addresses."""
        gone = [w for w in self.wanted.values() if w.peer_id == peer_id and not w.sticky]
        for w in gone:
            del self.wanted[w.addr]
        return gone

    def forget_all(self, peer_id: str) -> list[Wanted]:
        """Blocked: stop dialing every address of ``peer_id``."""
        gone = [w for w in self.wanted.values() if w.peer_id == peer_id]
        for w in gone:
            del self.wanted[w.addr]
        return gone

    def is_wanted(self, want: Wanted) -> bool:
        return self.wanted.get(want.addr) is want

    def wanted_ids(self) -> set[str]:
        return {w.peer_id for w in self.wanted.values() if w.peer_id is not None}

    def after(self, want: Wanted, outcome: Outcome, rand: float) -> float | None:
        """Seconds until the next attempt at ``want``, or None: stop dialing it (and it is no
        longer wanted). ``rand`` in [0, 1) spreads the delays."""
        if outcome in (Outcome.UP, Outcome.DUPLICATE):
            want.failures = 0
            want.connected = True
        elif outcome in (Outcome.SELF, Outcome.BLOCKED):
            self._drop(want)
            return None
        else:
            want.failures += 1
            if want.source is Source.GOSSIP and want.failures >= GOSSIP_MAX_FAILURES:
                self._drop(want)
                return None
        lo, hi = self.reconnect
        return backoff_delay(max(0, want.failures - 1), rand, lo, hi)

    def _drop(self, want: Wanted) -> None:
        if self.wanted.get(want.addr) is want:
            del self.wanted[want.addr]
