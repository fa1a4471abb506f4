"""The one place where local sessions, history and the LAN meet.

Every message, whoever wrote it, goes through ``Hub.post`` (local) or ``Hub.receive`` (from a peer):
it is deduplicated by id, remembered in the recent history, fanned out to local sessions (through
Flet's ``page.pubsub`` when there is a page, or plain listeners for the headless peer) and, for new
messages, handed to the LAN transport. The UI only ever talks to a ``HubSession``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .model import (
    HISTORY_IN_MEMORY,
    KIND_JOIN,
    KIND_LEAVE,
    Message,
    Peer,
    ValidationError,
    new_id,
    validate_name,
)

log = logging.getLogger("fletchat.hub")

PUBSUB_TOPIC = "fletchat"
SEEN_IDS_KEPT = 20_000


@dataclass(frozen=True)
class Online:
    """One entry of the "who is online" list: a person in a local session or a LAN peer."""

    key: str
    name: str
    device: str
    since: float
    local: bool


@dataclass(frozen=True)
class RosterChanged:
    """Published when someone comes or goes, so every view can redraw its peer list."""

    online: tuple[Online, ...]
    devices: tuple[Online, ...] = ()


HubEvent = Message | RosterChanged


class Transport(Protocol):
    """What the hub needs from the LAN side (the mesh implements it)."""

    def broadcast(self, msg: Message, exclude: str | None = None) -> None: ...


class Publisher(Protocol):
    """Flet's PubSubClient, narrowed to the one call the hub makes."""

    def send_all_on_topic(self, topic: str, message: Any) -> None: ...


@dataclass
class Hub:
    """Process-wide state shared by every session: recent history, dedupe, roster, fan-out."""

    peer_id: str
    device: str = "desktop"
    history_limit: int = HISTORY_IN_MEMORY
    transport: Transport | None = None
    _history: deque[Message] = field(init=False)
    _seen: OrderedDict[str, None] = field(init=False, default_factory=OrderedDict)
    _listeners: list[Callable[[HubEvent], None]] = field(init=False, default_factory=list)
    _publisher: Publisher | None = field(init=False, default=None)
    _sessions: dict[str, Online] = field(init=False, default_factory=dict)
    _peers: dict[str, Online] = field(init=False, default_factory=dict)
    _people: dict[tuple[str, str], Online] = field(init=False, default_factory=dict)
    _joins_by_person: dict[tuple[str, str], Message] = field(init=False, default_factory=dict)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._history = deque(maxlen=self.history_limit)

    # ---- wiring ----
    def use_pubsub(self, publisher: Publisher) -> None:
        """Fan out through Flet's pubsub (any session's client reaches every session)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = publisher

    def add_listener(self, listener: Callable[[HubEvent], None]) -> Callable[[], None]:
        """Subscribe a non-Flet consumer (headless peer, tests); returns the unsubscribe call."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    # ---- messages ----
    def post(self, msg: Message) -> bool:
        """A message written here: remember, show locally, send to the LAN. False if a duplicate."""
        if not self._remember(msg):
            return False
        if msg.kind == KIND_JOIN:
            with self._lock:
                self._joins_by_person[(msg.origin, msg.author)] = msg
        self._publish(msg)
        if self.transport is not None:
            self.transport.broadcast(msg)
        return True

    def receive(self, msg: Message, from_peer: str) -> bool:
        """A validated message from a peer: shown once however many paths carry it, then relayed."""
        if not self._remember(msg):
            return False
        self._publish(msg)
        if self.transport is not None:
            self.transport.broadcast(msg, exclude=from_peer)
        if msg.kind in (KIND_JOIN, KIND_LEAVE) and msg.origin != self.peer_id:
            self._track_remote_person(msg)
        return True

    def sync_batch(self) -> list[Message]:
        """What a newly connected peer is sent: recent history plus the join of everyone here now.

        The joins matter even when they are older than the history window: they are how the other
        side learns who is online behind this peer (its browser tabs, its desktop user).
        """
        with self._lock:
            recent = list(self._history)
            present = {(self.peer_id, o.name) for o in self._sessions.values()}
            joins = {
                m.id: m
                for m in self._joins_by_person.values()
                if (m.origin, m.author) in present
            }
        for m in recent:
            joins.pop(m.id, None)
        return sorted(joins.values(), key=lambda m: m.ts) + recent

    def history(self) -> list[Message]:
        """Recent conversation, oldest first, for late joiners and newly connected peers."""
        with self._lock:
            return list(self._history)

    def _remember(self, msg: Message) -> bool:
        with self._lock:
            if msg.id in self._seen:
                return False
            self._seen[msg.id] = None
            if len(self._seen) > SEEN_IDS_KEPT:
                self._seen.popitem(last=False)
            self._history.append(msg)
            return True

    def _publish(self, event: HubEvent) -> None:
        with self._lock:
            publisher = self._publisher
            listeners = list(self._listeners)
        if publisher is not None:
            publisher.send_all_on_topic(PUBSUB_TOPIC, event)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken consumer must not stop the others
                log.exception("hub listener failed")

    # ---- roster ----
    def online(self) -> list[Online]:
        """Every person here and behind connected LAN peers, sorted by name."""
        with self._lock:
            everyone = list(self._sessions.values()) + list(self._people.values())
        return sorted(everyone, key=lambda o: (o.name.casefold(), o.key))

    def lan_peers(self) -> list[Online]:
        """The devices (other installs) this one has a live connection to."""
        with self._lock:
            return sorted(self._peers.values(), key=lambda o: (o.name.casefold(), o.key))

    def _track_remote_person(self, msg: Message) -> None:
        key = (msg.origin, msg.author)
        with self._lock:
            if msg.kind == KIND_JOIN:
                peer = self._peers.get(msg.origin)
                device = peer.device if peer is not None else "LAN"
                self._people[key] = Online(
                    f"{msg.origin}/{msg.author}", msg.author, device, msg.ts, local=False
                )
            elif self._people.pop(key, None) is None:
                return
        self._roster_changed()

    def _roster_changed(self) -> None:
        self._publish(RosterChanged(tuple(self.online()), tuple(self.lan_peers())))

    def session_joined(self, key: str, name: str, device: str) -> None:
        with self._lock:
            self._sessions[key] = Online(key, name, device, time.time(), local=True)
        self._roster_changed()

    def session_left(self, key: str) -> None:
        with self._lock:
            gone = self._sessions.pop(key, None)
        if gone is not None:
            self._roster_changed()

    def peer_up(self, peer: Peer) -> None:
        """The mesh has a live, handshaken connection to ``peer`` (its people arrive by sync)."""
        with self._lock:
            self._peers[peer.id] = Online(peer.id, peer.name, peer.device, peer.since, local=False)
        self._roster_changed()

    def peer_down(self, peer: Peer, reason: str = "") -> None:
        """A peer vanished (goodbye, heartbeat timeout). Show it like a session leaving."""
        with self._lock:
            gone = self._peers.pop(peer.id, None)
            people = [k for k in self._people if k[0] == peer.id]
            left = [self._people.pop(k) for k in people]
        if gone is None and not left:
            return
        log.info("peer %s (%s) left: %s", peer.name, peer.id, reason or "disconnected")
        self._roster_changed()
        # Local-only notices: the peer could not say goodbye for its people. They stay out of the
        # history, which is synced to other peers, so nobody sees the same departure twice.
        for person in left:
            self._publish(Message(new_id(), KIND_LEAVE, person.name, peer.id, "", time.time()))


class HubSession:
    """One person's view of the hub (a browser tab, the desktop window, the headless peer)."""

    def __init__(self, hub: Hub, key: str | None = None, device: str = "browser") -> None:
        self.hub = hub
        self.key = key or new_id()
        self.device = device
        self.name: str | None = None
        self.last_name: str | None = None

    def join(self, raw_name: str) -> Message:
        """Validate the name, announce the join to everyone; raises ``ValidationError``."""
        name = validate_name(raw_name)
        self.name = self.last_name = name
        self.hub.session_joined(self.key, name, self.device)
        msg = Message.presence(KIND_JOIN, name, self.hub.peer_id)
        self.hub.post(msg)
        return msg

    def send(self, raw_text: str) -> Message | None:
        """Post a chat message. ``None`` for whitespace only; ``ValidationError`` if refused."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        if not raw_text or not raw_text.strip():
            return None
        msg = Message.chat(self.name, raw_text, self.hub.peer_id)
        self.hub.post(msg)
        return msg

    def leave(self) -> None:
        """Announce the leave (tab closed, app exiting). Safe to call twice."""
        if self.name is None:
            return
        name, self.name = self.name, None
        self.hub.session_left(self.key)
        self.hub.post(Message.presence(KIND_LEAVE, name, self.hub.peer_id))

    def rejoin(self) -> Message | None:
        """After a dropped connection comes back: join again under the same name, if any."""
        if self.name is None and self.last_name is not None:
            return self.join(self.last_name)
        return None

    @property
    def joined(self) -> bool:
        return self.name is not None
