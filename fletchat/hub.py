"""The one place where local sessions, history and the LAN meet.

Every message, whoever wrote it, goes through ``Hub.post`` (local) or ``Hub.receive`` (from a peer):
it is stamped with the hybrid logical clock (so every peer shows the same order), deduplicated by
id, stored (SQLite, when the node has a store), fanned out to local sessions (through Flet's
``page.pubsub`` when there is a page, or plain listeners for the headless peer) and, for new
messages, handed to the LAN transport. The UI only ever talks to a ``HubSession``.

The hub also answers the mesh's catch-up questions (``CatchUp`` in mesh.py): what it has, what a
peer lacks, and which of its own messages peers have confirmed (the outbox's "delivered").
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .clock import HLC, Stamp
from .events import (
    Acceptance,
    ChannelsChanged,
    Delivered,
    HubEvent,
    IdentityWarning,
    MessageRefused,
    Online,
    Outcome,
    Presence,
    RosterChanged,
)
from .model import (
    DEFAULT_CHANNEL,
    HISTORY_IN_MEMORY,
    KIND_JOIN,
    KIND_LEAVE,
    MAX_NAME_CHARS,
    Message,
    Peer,
    ValidationError,
    new_id,
    validate_channel,
    validate_name,
)
from .protocol import TokenBucket
from .store import Record, Store, StoreWriter

log = logging.getLogger("fletchat.hub")

PUBSUB_TOPIC = "fletchat"
SEEN_IDS_KEPT = 20_000
HISTORY_PAGE = 100
CHANNEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DM_PREFIX = "@"


def channel_name(raw: str) -> str:
    """A new channel's name: lower-case letters, digits, - and _, up to 32; "#" is optional."""
    name = raw.strip().lstrip("#").strip().lower()
    if not CHANNEL_NAME_RE.match(name):
        raise ValidationError(
            "Channel names are 1-32 characters: letters, digits, - and _ (e.g. #lunch)."
        )
    return name


def dm_channel(a: str, b: str) -> str:
    """The channel of two: the same name whoever opens it ("@Ann+Bob")."""
    first, second = sorted((validate_name(a), validate_name(b)))
    return validate_channel(f"{DM_PREFIX}{first}+{second}")


def dm_members(channel: str) -> tuple[str, ...]:
    """The two names of a direct-message channel, () for an ordinary channel."""
    if not channel.startswith(DM_PREFIX) or "+" not in channel:
        return ()
    first, _, second = channel[len(DM_PREFIX):].partition("+")
    return (first, second)



# Local sessions (a tab, the window, a relay client): how fast one person may post, once the
# node turns it on (``Hub.session_rate``). The headless peer is exempt: it is a script its owner
# runs (bots, tests pipe bursts into it), not a person on someone else's browser.
SESSION_RATE_PER_SECOND = 10.0
SESSION_BURST = 20.0
SESSION_RATE_EXEMPT_DEVICES = ("headless",)


class Transport(Protocol):
    """What the hub needs from the LAN side (the mesh implements it)."""

    def broadcast(self, msg: Message, exclude: str | None = None) -> None: ...

    def presence_changed(self) -> None: ...


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
    store: Store | None = None
    store_error: str = ""  # why history is not kept (shown to people), "" when all is well
    lan_warning: str = ""  # why other devices may not find this one (e.g. no multicast lock)
    trust: Any = None  # fletchat.trust.Trust when the node has an identity (keys, blocks)
    session_rate: tuple[float, float] | None = None  # (per second, burst) for HubSession.send
    _history: deque[Message] = field(init=False)
    _seen: OrderedDict[str, None] = field(init=False, default_factory=OrderedDict)
    _listeners: list[Callable[[HubEvent], None]] = field(init=False, default_factory=list)
    _publisher: Publisher | None = field(init=False, default=None)
    _sessions: dict[str, Online] = field(init=False, default_factory=dict)
    _peers: dict[str, Online] = field(init=False, default_factory=dict)
    _people: dict[tuple[str, str], Online] = field(init=False, default_factory=dict)
    _joins_by_person: dict[tuple[str, str], Message] = field(init=False, default_factory=dict)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)

    _channels: set[str] = field(init=False, default_factory=set)
    _identity_warnings: list[IdentityWarning] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._history = deque(maxlen=self.history_limit)
        self.clock = HLC(self.peer_id, last=self.store.last_hlc() if self.store else None)
        self._writer = StoreWriter(self.store) if self.store is not None else None
        self._own_seq = self.store.next_seq(self.peer_id) - 1 if self.store else 0
        self._channels = {DEFAULT_CHANNEL, *(self.store.channels() if self.store else ())}

    def close(self) -> None:
        """Flush what is queued for the database and close it."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.store is not None:
            self.store.close()

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
    def post(self, msg: Message) -> Message | None:
        """A message written here: stamp, store, show locally, send to the LAN.

        Returns the stamped message (with its clock stamp and seq), ``None`` for a duplicate.
        """
        if self._is_known(msg.id):
            return None
        stamp = self.clock.now()
        msg = replace(msg, hlc=stamp.encode())
        if self.store is not None:
            msg = replace(msg, seq=self.store.add_local(msg, stamp).seq or 0)
        else:
            with self._lock:
                self._own_seq += 1
                msg = replace(msg, seq=self._own_seq)
        if msg.kind == KIND_JOIN:
            with self._lock:
                self._joins_by_person[(msg.origin, msg.author)] = msg
        self._remember(msg)
        self._note_channel(msg.channel)
        self._publish(msg)
        if self.transport is not None:
            self.transport.broadcast(msg)
            if self.store is not None and self._peer_count():
                self.store.mark_sent(msg.id)
        return msg

    def receive(
        self, msg: Message, from_peer: str, *, verified: bool = False, relay: bool = True
    ) -> Acceptance:
        """A validated message from a peer: shown once however many paths carry it, then relayed
        (live messages) or not (catch-up batches). (Minimal form of the contract; the acceptance
        branch owns the full pipeline.)"""
        if msg.kind in (KIND_JOIN, KIND_LEAVE) and msg.origin != self.peer_id:
            self._track_remote_person(msg)  # presence is state: a known join still counts
        if self._is_known(msg.id):
            return Acceptance(Outcome.DUPLICATE, "already here", msg)
        if msg.hlc:
            try:
                stamp = Stamp.decode(msg.hlc)
                self.clock.observe(stamp)  # keeps our clock ahead of everything we have seen
            except ValidationError as err:  # includes ClockDriftError: a clock far in the future
                log.warning("refused message %s from %s: %s", msg.id, from_peer, err)
                return Acceptance(Outcome.REFUSED, str(err), msg)
        else:
            stamp = self.clock.now()
            msg = replace(msg, hlc=stamp.encode())
        self._remember(msg)
        if self._writer is not None:
            self._writer.submit(Record(msg, stamp, msg.seq or None, "delivered", time.time()))
        self._note_channel(msg.channel)
        self._publish(msg)
        if relay and self.transport is not None:
            self.transport.broadcast(msg, exclude=from_peer)
        return Acceptance(Outcome.ACCEPTED, "", msg)

    async def wait_stored(self, ids: tuple[str, ...]) -> None:
        """Returns once accepted ids are durable (the store writer committed them)."""
        if self._writer is not None:
            import asyncio

            await asyncio.to_thread(self._writer.flush, 5.0)

    def refused(self, peer_id: str, refusals: tuple[tuple[str, str], ...]) -> None:
        """A peer refused messages we sent it (ids + reasons)."""
        self._publish(MessageRefused(peer_id, refusals, time.time()))

    def local_presence(self) -> tuple[Presence, ...]:
        with self._lock:
            return tuple(Presence(o.name, o.device, o.since) for o in self._sessions.values())

    def peer_presence(self, peer_id: str, people: tuple[Presence, ...]) -> None:
        """What a connected peer says is on it now replaces what it said before."""
        with self._lock:
            for key in [k for k in self._people if k[0] == peer_id]:
                del self._people[key]
            for p in people:
                self._people[(peer_id, p.name)] = Online(
                    f"{peer_id}/{p.name}", p.name, p.device, p.since, local=False
                )
        self._roster_changed()

    def history(
        self, channel: str = DEFAULT_CHANNEL, limit: int = HISTORY_PAGE, before: str = ""
    ) -> list[Message]:
        """A page of the conversation in clock order, oldest first; ``before`` pages upwards
        (pass the first message's ``hlc``)."""
        if self.store is not None:
            if self._writer is not None:
                self._writer.flush(timeout=2.0)
            records = self.store.recent(
                channel, limit, before=Stamp.decode(before) if before else None
            )
            return [_wire(r) for r in records]
        with self._lock:
            msgs = [m for m in self._history if m.channel == channel and (not before or m.hlc < before)]
        return sorted(msgs, key=lambda m: m.hlc)[-limit:]

    def pending_ids(self) -> set[str]:
        """Messages written here that no peer has confirmed yet (the outbox)."""
        if self.store is None:
            return set()
        return {r.msg.id for r in self.store.pending()}

    def search(self, query: str, channel: str | None = None, limit: int = 50):
        """Messages matching the words of ``query`` (prefixes too), newest first, as
        (message, snippet) pairs; the snippet marks matches with ``store.MARK_START/END``."""
        if self.store is None:
            words = [w.casefold() for w in query.split() if w]
            with self._lock:
                found = [
                    m for m in self._history
                    if words and all(w in m.text.casefold() for w in words)
                    and (channel is None or m.channel == channel)
                ]
            return [(m, m.text) for m in reversed(found)][:limit]
        if self._writer is not None:
            self._writer.flush(timeout=2.0)
        return [(_wire(h.record), h.snippet) for h in self.store.search(query, channel, limit)]

    # ---- channels ----
    def channels(self) -> list[str]:
        with self._lock:
            return sorted(self._channels, key=lambda c: (c != DEFAULT_CHANNEL, c.startswith(DM_PREFIX), c))

    def _note_channel(self, channel: str) -> None:
        with self._lock:
            if channel in self._channels:
                return
            self._channels.add(channel)
        if self.store is not None:
            self.store.create_channel(channel)
        self._publish(ChannelsChanged(tuple(self.channels())))

    # ---- catch-up (mesh.CatchUp) ----
    def summary(self) -> dict[str, int]:
        if self.store is None:
            return {}
        if self._writer is not None:
            self._writer.flush(timeout=2.0)
        return self.store.have_summary()

    def missing(
        self, summary: dict[str, int], after: tuple[str, int] | None, limit: int
    ) -> list[Message]:
        if self.store is None:
            return []
        return [_wire(r) for r in self.store.missing_for(summary, limit, after)]

    def caught_up(self, msg: Message, peer_id: str) -> None:
        self.receive(msg, peer_id, relay=False)

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None:
        """A peer's summary: everything of ours up to its seq for us is delivered."""
        if self.store is None:
            return
        self.store.update_cursor(peer_id, summary)
        upto = summary.get(self.peer_id, 0)
        ids = tuple(
            r.msg.id
            for r in self.store.pending()
            if r.msg.origin == self.peer_id and r.seq is not None and r.seq <= upto
        )
        self._delivered(ids)

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None:
        if self.store is not None:
            self._delivered(ids)

    def _delivered(self, ids: tuple[str, ...]) -> None:
        assert self.store is not None
        done = tuple(i for i in ids if self.store.mark_delivered(i))
        if done:
            self._publish(Delivered(done, time.time()))

    def _peer_count(self) -> int:
        peers = getattr(self.transport, "peers", None)
        return len(peers()) if callable(peers) else 0

    def _is_known(self, msg_id: str) -> bool:
        with self._lock:
            if msg_id in self._seen:
                return True
        return self.store is not None and self.store.get(msg_id) is not None

    def _remember(self, msg: Message) -> bool:
        with self._lock:
            if msg.id in self._seen:
                return False
            self._seen[msg.id] = None
            if len(self._seen) > SEEN_IDS_KEPT:
                self._seen.popitem(last=False)
            self._history.append(msg)
            return True

    def sync_batch(self) -> list[Message]:
        """What a newly connected peer is sent right away: the joins of everyone here now (even
        when older than any history window: they tell the other side who is online behind this
        peer) and, without a store, the recent history (with one, history goes by catch-up)."""
        joins = {m.id: m for m in self.recent_joins()}
        if self.store is not None:
            return list(joins.values())
        with self._lock:
            recent = list(self._history)
        for m in recent:
            joins.pop(m.id, None)
        return list(joins.values()) + recent

    def recent_joins(self) -> list[Message]:
        """Joins of the people here now (for a newly connected peer's roster), oldest first."""
        with self._lock:
            present = {(self.peer_id, o.name) for o in self._sessions.values()}
            joins = [m for k, m in self._joins_by_person.items() if k in present]
        return sorted(joins, key=lambda m: m.hlc)

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
        if self.transport is not None:
            self.transport.presence_changed()

    def session_left(self, key: str) -> None:
        with self._lock:
            gone = self._sessions.pop(key, None)
        if gone is not None:
            self._roster_changed()
            if self.transport is not None:
                self.transport.presence_changed()

    def peer_up(self, peer: Peer) -> None:
        """The mesh has a live, handshaken connection to ``peer`` (its people arrive by sync)."""
        with self._lock:
            self._peers[peer.id] = Online(
                peer.id, peer.name, peer.device, peer.since, local=False,
                fingerprint=peer.fingerprint,
            )
        self._roster_changed()

    # ---- trust (docs/security.md) ----
    @property
    def fingerprint(self) -> str:
        """This install's key fingerprint ("" without an identity), to compare in person."""
        return self.trust.fingerprint if self.trust is not None else ""

    def peer_fingerprint(self, peer_id: str) -> str:
        """The fingerprint of the key known for ``peer_id`` ("" if never met)."""
        if self.trust is None:
            return ""
        return self.trust.store.known().get(peer_id, "")

    def identity_warning(self, peer_id: str, name: str, old_fp: str, new_fp: str) -> None:
        """Called by the mesh when a known peer id presents another key (it was refused)."""
        warning = IdentityWarning(peer_id, name, old_fp, new_fp, time.time())
        with self._lock:
            self._identity_warnings.append(warning)
        self._publish(warning)

    def identity_warnings(self) -> list[IdentityWarning]:
        with self._lock:
            return list(self._identity_warnings)

    def forget_peer(self, peer_id: str) -> bool:
        """Reset the key known for ``peer_id``: its next key is trusted on first use."""
        with self._lock:
            self._identity_warnings = [w for w in self._identity_warnings if w.peer_id != peer_id]
        return self.trust.store.forget(peer_id) if self.trust is not None else False

    def block(self, peer_id: str) -> None:
        """Block a LAN peer: its connection drops, it is refused from now on (persisted), and
        messages it wrote are dropped even when others relay them."""
        with self._lock:
            known = self._peers.get(peer_id)
        name = known.name if known is not None else ""
        block = getattr(self.transport, "block", None)
        if callable(block):
            block(peer_id, name)
        elif self.trust is not None:
            self.trust.store.block(peer_id, name)
        else:
            raise ValidationError("Blocking needs the LAN (this copy runs without it).")

    def unblock(self, peer_id: str) -> None:
        unblock = getattr(self.transport, "unblock", None)
        if callable(unblock):
            unblock(peer_id)
        elif self.trust is not None:
            self.trust.store.unblock(peer_id)

    def blocked_peers(self) -> dict[str, str]:
        """Blocked peer id -> the name it had when blocked."""
        return self.trust.store.blocked() if self.trust is not None else {}

    def message_status(self, msg: Message) -> str:
        """"verified" (signed by its origin's known key), "unverified" (origin never met, or
        no identity here) or "refused" (its signature does not hold)."""
        if self.trust is None:
            return "unverified"
        return self.trust.message_status(msg)

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
            notice = Message(new_id(), KIND_LEAVE, person.name, peer.id, "", time.time())
            self._publish(replace(notice, hlc=self.clock.now().encode()))


class HubSession:
    """One person's view of the hub (a browser tab, the desktop window, the headless peer)."""

    def __init__(self, hub: Hub, key: str | None = None, device: str = "browser") -> None:
        self.hub = hub
        self.key = key or new_id()
        self.device = device
        self.name: str | None = None
        self.last_name: str | None = None
        # Private rooms (fletchat/rooms.py): channel -> key, kept for this session only.
        self.room_keys: dict[str, bytes] = {}
        rate = getattr(hub, "session_rate", None)  # the web client's mirror hub has none
        self._bucket = (
            TokenBucket(*rate, clock=time.monotonic)
            if rate is not None and device not in SESSION_RATE_EXEMPT_DEVICES
            else None
        )

    def join(self, raw_name: str) -> Message:
        """Validate the name, announce the join to everyone; raises ``ValidationError``."""
        name = validate_name(raw_name)
        self.name = self.last_name = name
        self.hub.session_joined(self.key, name, self.device)
        msg = Message.presence(KIND_JOIN, name, self.hub.peer_id)
        return self.hub.post(msg) or msg

    def send(self, raw_text: str, channel: str = DEFAULT_CHANNEL) -> Message | None:
        """Post a chat message. ``None`` for whitespace only; ``ValidationError`` if refused."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        if not raw_text or not raw_text.strip():
            return None
        if self._bucket is not None and not self._bucket.allow():
            raise ValidationError("You are sending too fast. Wait a moment and try again.")
        msg = Message.chat(self.name, raw_text, self.hub.peer_id, validate_channel(channel))
        key = self.room_keys.get(msg.channel)
        if key is not None:  # a private room: only the sealed text leaves this session
            from .rooms import seal

            msg = replace(msg, text=seal(key, msg.channel, msg.id, msg.text))
        return self.hub.post(msg) or msg

    def set_room_passphrase(self, channel: str, passphrase: str) -> None:
        """Make ``channel`` a private room for this session: what it sends there is sealed, and
        sealed messages there open with this passphrase. ``ValidationError`` if too short."""
        from .rooms import room_key

        channel = validate_channel(channel)
        self.room_keys[channel] = room_key(channel, passphrase)

    def forget_room(self, channel: str) -> None:
        self.room_keys.pop(channel, None)

    def reveal(self, msg: Message) -> tuple[str, str]:
        """The text to show for ``msg`` and how it was sealed: ("...", "plain") for ordinary
        text, "open" (opened with this session's room key), "no_key" or "refused" (does not
        authenticate: wrong passphrase, altered, or moved from another channel or id)."""
        from .rooms import SEALED_NO_KEY, SEALED_REFUSED, RoomError, is_sealed, open_sealed

        if not is_sealed(msg.text):
            return msg.text, "plain"
        key = self.room_keys.get(msg.channel)
        if key is None:
            return SEALED_NO_KEY, "no_key"
        try:
            return open_sealed(key, msg.channel, msg.id, msg.text), "open"
        except RoomError:
            return SEALED_REFUSED, "refused"

    def create_channel(self, raw: str) -> str:
        """Create (or just open) ``#name``; the LAN learns it from the announcement."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        name = channel_name(raw)
        if name not in self.hub.channels():
            self.hub.post(Message.channel_created(self.name, self.hub.peer_id, name))
        return name

    def direct_channel(self, other: str) -> str:
        """The direct-message channel between this person and ``other``."""
        if self.name is None:
            raise ValidationError("Join the chat first.")
        if other.strip() == self.name:
            raise ValidationError("That is you.")
        return dm_channel(self.name, other[:MAX_NAME_CHARS])

    def can_see(self, channel: str) -> bool:
        """Direct-message channels are listed only for their two members."""
        members = dm_members(channel)
        return not members or (self.name is not None and self.name in members)

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


def _wire(record: Record) -> Message:
    """A stored record as the shared ``Message`` type, with its clock stamp and seq."""
    return replace(record.msg, hlc=record.hlc.encode(), seq=record.seq or 0)
