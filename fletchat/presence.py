"""Who is online: people in this node's sessions, LAN devices with a live connection, and the
people each connected device says are on it now (its ``presence`` list).

Presence comes only from live connections: a peer's list replaces its previous one, is cut to
``MAX_PRESENCE_PER_PEER``, and goes when the peer goes. Join/leave lines in the history (live or
replayed by catch-up) never make anyone online, so an attacker's old or invented joins cost
nothing here, and a new tab costs at most (devices x 64) rows.
"""

from __future__ import annotations

import threading
import time

from .events import Online, Presence
from .model import MAX_PRESENCE_PER_PEER, Peer, ValidationError, validate_name


class Roster:
    """Thread-safe; every change returns whether the roster changed (the hub then publishes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Online] = {}
        self._devices: dict[str, Online] = {}
        self._people: dict[str, tuple[Online, ...]] = {}

    # ---- local sessions ----
    def session_joined(self, key: str, name: str, device: str) -> None:
        with self._lock:
            self._sessions[key] = Online(key, name, device, time.time(), local=True)

    def session_left(self, key: str) -> bool:
        with self._lock:
            return self._sessions.pop(key, None) is not None

    def local_presence(self) -> tuple[Presence, ...]:
        """The people in this node's sessions now (what the mesh tells connected peers)."""
        with self._lock:
            people = sorted(self._sessions.values(), key=lambda o: (o.since, o.key))
        return tuple(Presence(o.name, o.device, o.since) for o in people[:MAX_PRESENCE_PER_PEER])

    # ---- LAN devices and their people ----
    def peer_up(self, peer: Peer) -> None:
        with self._lock:
            self._devices[peer.id] = Online(
                peer.id, peer.name, peer.device, peer.since, local=False,
                fingerprint=peer.fingerprint,
            )

    def peer_down(self, peer_id: str) -> tuple[bool, tuple[Online, ...]]:
        """(whether anything changed, the people who were on that peer)."""
        with self._lock:
            device = self._devices.pop(peer_id, None)
            people = self._people.pop(peer_id, ())
        return device is not None or bool(people), people

    def device(self, peer_id: str) -> Online | None:
        with self._lock:
            return self._devices.get(peer_id)

    def peer_presence(self, peer_id: str, people: tuple[Presence, ...]) -> bool:
        """Replace what ``peer_id`` says is on it. Ignored unless that peer is connected; cut to
        ``MAX_PRESENCE_PER_PEER``; names that break the name rules are dropped."""
        rows: list[Online] = []
        seen: set[str] = set()
        for p in people[:MAX_PRESENCE_PER_PEER]:
            try:
                name = validate_name(p.name)
            except ValidationError:
                continue
            if name in seen:
                continue
            seen.add(name)
            device = p.device if isinstance(p.device, str) and len(p.device) <= 32 else "LAN"
            since = p.since if isinstance(p.since, (int, float)) else 0.0
            rows.append(Online(f"{peer_id}/{name}", name, device, float(since), local=False))
        with self._lock:
            if peer_id not in self._devices:
                return False
            new = tuple(rows)
            if self._people.get(peer_id, ()) == new:
                return False
            self._people[peer_id] = new
        return True

    # ---- views ----
    def online(self) -> list[Online]:
        """Every person here and on connected LAN peers, sorted by name."""
        with self._lock:
            everyone = list(self._sessions.values())
            for people in self._people.values():
                everyone.extend(people)
        return sorted(everyone, key=lambda o: (o.name.casefold(), o.key))

    def lan_peers(self) -> list[Online]:
        """The devices (other installs) this one has a live connection to."""
        with self._lock:
            return sorted(self._devices.values(), key=lambda o: (o.name.casefold(), o.key))

    def peer_count(self) -> int:
        with self._lock:
            return len(self._devices)
