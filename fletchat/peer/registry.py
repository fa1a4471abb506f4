"""Who holds a slot: one connection per peer, bounded sockets and peers, fair to newcomers.

Pure bookkeeping over opaque connection handles (the mesh's links), with time passed in:

- ``Registry.offer``: a handshaken connection asks to be *the* connection for its peer. The
  ``keep_new_connection`` rule picks between two connections to one peer (both ends agree), and
  the *announce rule* says whether the app hears "peer up" (only for a new peer, a restarted one,
  or one that changed name, device or address).
- ``Registry.remove``: a connection ended; the peer is down now, or after a grace period when the
  other side closed it as a duplicate (its replacement is on its way).
- ``admit_socket`` / ``admit_peer``: the slot policy. Caps per address keep one address from
  taking every slot; when full, the unauthenticated (oldest first) and then the idle peers of the
  most crowded address make room, so an honest newcomer from another address always gets in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fletchat.model import Peer
from fletchat.protocol import ConnKey, keep_new_connection

H = TypeVar("H", bound=Hashable)


@dataclass(frozen=True)
class Slot(Generic[H]):
    """What the slot policy knows of one open socket."""

    handle: H
    address: str
    opened: float
    authenticated: bool
    last_message: float  # last chat message received (opened if none): "idle" is measured here


@dataclass(frozen=True)
class Admit:
    """Let the newcomer in; close ``evict`` (if any) to make room."""

    evict: object | None = None


@dataclass(frozen=True)
class Refuse:
    reason: str


Admission = Admit | Refuse


@dataclass(frozen=True)
class SlotLimits:
    max_connections: int = 128  # open sockets, handshaken or not
    max_pending_per_address: int = 8  # sockets still in the handshake, from one address
    max_peers: int = 64  # handshaken peers
    max_peers_per_address: int = 16  # handshaken peers behind one address (NAT, one host)


def admit_socket(slots: Iterable[Slot[H]], address: str, limits: SlotLimits) -> Admission:
    """A new socket from ``address``: admit it, evict the oldest unauthenticated socket (from the
    most crowded address) to make room, or refuse it."""
    slots = list(slots)
    pending = [s for s in slots if not s.authenticated]
    if sum(1 for s in pending if s.address == address) >= limits.max_pending_per_address:
        return Refuse(f"too many handshakes from {address}")
    if len(slots) < limits.max_connections:
        return Admit()
    if not pending:
        return Refuse("too many connections; try again later")
    crowd = Counter(s.address for s in pending)
    victim = min(pending, key=lambda s: (-crowd[s.address], s.opened))
    return Admit(victim.handle)


def admit_peer(
    peers: Iterable[Slot[H]], address: str, limits: SlotLimits, known_peer: bool
) -> Admission:
    """A newly authenticated peer from ``address``. A peer already registered (a reconnect) is
    always admitted. When full, the peer idle longest behind the most crowded address makes room,
    but only if that address holds more peers than the newcomer's would."""
    if known_peer:
        return Admit()
    peers = list(peers)
    crowd = Counter(s.address for s in peers)
    if crowd[address] >= limits.max_peers_per_address:
        return Refuse(f"too many peers from {address} ({limits.max_peers_per_address})")
    if len(peers) < limits.max_peers:
        return Admit()
    victim = min(peers, key=lambda s: (-crowd[s.address], s.last_message))
    if crowd[victim.address] <= crowd[address] + 1:
        return Refuse(f"too many peers ({limits.max_peers})")
    return Admit(victim.handle)


@dataclass(frozen=True)
class Offer(Generic[H]):
    """The registry's answer to ``offer``."""

    accepted: bool
    replaced: H | None = None  # the older connection to close as a duplicate
    announce: bool = False  # tell the app "peer up" (and gossip the address)


@dataclass(eq=False)
class _Entry(Generic[H]):
    handle: H
    peer: Peer
    key: ConnKey


@dataclass(eq=False)
class Registry(Generic[H]):
    """The connection in use for each peer id, and peers whose "down" waits out a grace."""

    _by_id: dict[str, _Entry[H]] = field(default_factory=dict)
    _pending_down: dict[str, tuple[_Entry[H], float]] = field(default_factory=dict)

    def offer(self, handle: H, peer: Peer, key: ConnKey) -> Offer[H]:
        existing = self._by_id.get(peer.id)
        previous = existing
        if existing is not None and not keep_new_connection(existing.key, key):
            return Offer(False)
        pending = self._pending_down.pop(peer.id, None)
        if pending is not None:
            previous = previous or pending[0]
        announce = previous is None or _changed(previous, peer, key)
        self._by_id[peer.id] = _Entry(handle, peer, key)
        return Offer(True, existing.handle if existing is not None else None, announce)

    def remove(self, handle: H, peer_id: str, grace_until: float | None) -> bool:
        """``handle`` ended. True: report its peer down now. With ``grace_until`` the report
        waits (``expire``) unless a new connection for that peer registers first."""
        entry = self._by_id.get(peer_id)
        if entry is None or entry.handle != handle:
            return False
        del self._by_id[peer_id]
        if grace_until is not None:
            self._pending_down[peer_id] = (entry, grace_until)
            return False
        return True

    def expire(self, now: float) -> list[Peer]:
        """Peers whose grace ended without a replacement: report them down now."""
        gone = [pid for pid, (_, until) in self._pending_down.items() if until <= now]
        return [self._pending_down.pop(pid)[0].peer for pid in gone]

    def drain_pending(self) -> list[Peer]:
        """Shutting down: every peer still in its grace is down now."""
        peers = [entry.peer for entry, _ in self._pending_down.values()]
        self._pending_down.clear()
        return peers

    def get(self, peer_id: str) -> H | None:
        entry = self._by_id.get(peer_id)
        return entry.handle if entry is not None else None

    def is_current(self, handle: H, peer_id: str) -> bool:
        entry = self._by_id.get(peer_id)
        return entry is not None and entry.handle == handle

    def known(self, peer_id: str) -> bool:
        """Registered, or down only pending its grace (a reconnect, not a newcomer)."""
        return peer_id in self._by_id or peer_id in self._pending_down

    def items(self) -> list[tuple[str, H]]:
        return [(pid, e.handle) for pid, e in self._by_id.items()]

    def handles(self) -> list[H]:
        return [e.handle for e in self._by_id.values()]

    def peers(self) -> list[Peer]:
        return [e.peer for e in self._by_id.values()]

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._by_id


def _changed(old: _Entry[H], peer: Peer, key: ConnKey) -> bool:
    """Did the peer restart (new session) or change its name, device or address?"""
    a = old.peer
    return old.key.session != key.session or (a.name, a.device, a.host, a.port) != (
        peer.name, peer.device, peer.host, peer.port,
    )
