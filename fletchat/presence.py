"""Who is online: people in this node's sessions, LAN devices with a live connection, and the
people each connected device says are on it now (its ``presence`` list).

Presence comes only from live connections: a peer's list replaces its previous one, is cut to
``MAX_PRESENCE_PER_PEER``, and goes when the peer goes. Join/leave lines in the history (live or
replayed by catch-up) never make anyone online, so an attacker's old or invented joins cost
nothing here, and a new tab costs at most (devices x 64) rows.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from .events import Online, Presence, RosterChanged
from .model import (
    KIND_LEAVE,
    MAX_PRESENCE_PER_PEER,
    Message,
    Peer,
    ValidationError,
    new_id,
    validate_name,
)

log = logging.getLogger("fletchat.hub")


class Roster:
    """Thread-safe; every change returns whether the roster changed (the hub then publishes).
    The sorted list of everyone is kept until the next change: each open tab asks for it with
    every message it shows (a delivery mark), and sorting a hundred people a hundred times per
    message was a tenth of a host's CPU at 100 tabs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Online] = {}
        self._devices: dict[str, Online] = {}
        self._people: dict[str, tuple[Online, ...]] = {}
        self._everyone: tuple[Online, ...] | None = None  # online(), until the next change

    # ---- local sessions ----
    def session_joined(self, key: str, name: str, device: str) -> None:
        with self._lock:
            self._sessions[key] = Online(key, name, device, time.time(), local=True)
            self._everyone = None

    def session_left(self, key: str) -> bool:
        with self._lock:
            self._everyone = None
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
            self._everyone = None
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
            self._everyone = None
        return True

    # ---- views ----
    def online(self) -> list[Online]:
        """Every person here and on connected LAN peers, sorted by name."""
        with self._lock:
            if self._everyone is None:
                everyone = list(self._sessions.values())
                for people in self._people.values():
                    everyone.extend(people)
                everyone.sort(key=lambda o: (o.name.casefold(), o.key))
                self._everyone = tuple(everyone)
            return list(self._everyone)

    def lan_peers(self) -> list[Online]:
        """The devices (other installs) this one has a live connection to."""
        with self._lock:
            return sorted(self._devices.values(), key=lambda o: (o.name.casefold(), o.key))

    def peer_count(self) -> int:
        with self._lock:
            return len(self._devices)


class PresenceMethods:
    """Mixed into ``Hub``: the presence API the mesh and the views call (delegates to Roster)."""

    roster: Roster
    transport: Any
    clock: Any

    def _publish(self, event: Any) -> None: ...

    def online(self) -> list[Online]:
        return self.roster.online()

    def lan_peers(self) -> list[Online]:
        return self.roster.lan_peers()

    def local_presence(self) -> tuple[Presence, ...]:
        return self.roster.local_presence()

    def peer_presence(self, peer_id: str, people: tuple[Presence, ...]) -> None:
        if self.roster.peer_presence(peer_id, tuple(people)):
            self._roster_changed()

    def session_joined(self, key: str, name: str, device: str) -> None:
        self.roster.session_joined(key, name, device)
        self._roster_changed()
        self.transport.presence_changed()

    def session_left(self, key: str) -> None:
        if self.roster.session_left(key):
            self._roster_changed()
            self.transport.presence_changed()

    def peer_up(self, peer: Peer) -> None:
        """The mesh has a live, handshaken connection to ``peer`` (its people come by presence)."""
        self.roster.peer_up(peer)
        self._roster_changed()

    def peer_down(self, peer: Peer, reason: str = "") -> None:
        """A peer vanished (goodbye, heartbeat timeout): it and its people leave the roster."""
        changed, people = self.roster.peer_down(peer.id)
        if not changed:
            return
        log.info("peer %s (%s) left: %s", peer.name, peer.id, reason or "disconnected")
        self._roster_changed()
        # Local-only notices (not stored, not synced): the peer could not say goodbye for them.
        for person in people:
            notice = Message(new_id(), KIND_LEAVE, person.name, peer.id, "", time.time())
            self._publish(replace(notice, hlc=self.clock.now().encode()))

    def _roster_changed(self) -> None:
        self._publish(RosterChanged(tuple(self.online()), tuple(self.lan_peers())))

