"""The one place where local sessions, history and the LAN meet.

Every message written here goes through ``Hub.post``; every message from a peer, live or by
catch-up, through ``Hub.receive``, the one acceptance pipeline (``acceptance.py``; a catch-up
page through ``Hub.receive_page``, the same verdicts per message in one pass: ``hub_pages``): it
returns ACCEPTED, DUPLICATE or REFUSED with a reason, and only the first two may be acknowledged, after
``await wait_stored(ids)``. Accepted messages are stored (``StoreWriter`` on its own thread),
shown to local sessions (Flet's pubsub or plain listeners) and, when live, relayed.

Parts: ``presence.Roster`` (who is online, from live connections only), ``outbox`` (catch-up
answers, delivered/refused), ``memstore`` (the in-memory store and writer used without a data
directory), ``trustpolicy`` (keys and blocks, or none), ``hub_writes`` (the queue to the store
writer and what it holds until committed), ``session.HubSession`` (one person's view).

Blocking work never needs the event loop: the ``*_async`` methods run store reads and trust-file
writes in a thread; outbox writes run on the hub's own worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .acceptance import (
    OWN_ORIGIN,
    Action,
    Arrival,
    Held,
    QuotaLimits,
    Quotas,
    check_stamp,
    judge_slot,
)
from .clock import HLC, ClockDriftError, Stamp, wall_ms
from .conversation.hub_part import ConvHubMethods
from .conversation.state import ConvState
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
    StoreFailed,
)
from .hub_pages import PageReceiver
from .hub_writes import StoredMessages, fault_text
from .memstore import ImmediateWriter, MemoryStore
from .model import (
    DEFAULT_CHANNEL,
    HISTORY_IN_MEMORY,
    KIND_JOIN,
    KIND_LEAVE,
    Message,
    Peer,
    ValidationError,
)
from .outbox import CatchUpAnswers, MeshSideMethods, Outbox
from .owner import NameHolds
from .presence import PresenceMethods, Roster
from .reading import HISTORY_PAGE, HistoryReads
from .session import (  # noqa: F401  (re-exported: callers import them from the hub)
    DM_PREFIX,
    SESSION_BURST,
    SESSION_RATE_PER_SECOND,
    HubSession,
    channel_name,
    dm_channel,
    dm_members,
)
from .store import State, StoreFull, StoreWriter
from .trustpolicy import KeyTrust, NoTrust, TrustMethods

__all__ = [
    "HISTORY_PAGE", "PUBSUB_TOPIC", "Acceptance", "ChannelsChanged", "Delivered", "Hub", "HubEvent",
    "HubSession", "IdentityWarning", "MessageRefused", "NullTransport", "Online", "Outcome",
    "Presence", "RosterChanged", "StoreFailed", "Transport",
]

log = logging.getLogger("fletchat.hub")

PUBSUB_TOPIC = "fletchat"
class ReadOnlyError(ValidationError):
    """Sending while the history cannot be written: ``str(err)`` says why and what to do."""


class Transport(Protocol):
    """What the hub needs from the LAN side (the mesh implements it; ``NullTransport`` without)."""

    def broadcast(self, msg: Message, exclude: str | None = None) -> None: ...
    def peers(self) -> list[Peer]: ...
    def presence_changed(self) -> None: ...
    def block(self, peer_id: str, name: str = "") -> None: ...
    def unblock(self, peer_id: str) -> None: ...


class NullTransport:
    """No LAN: nothing to send; blocks are still persisted by the trust policy."""

    def __init__(self, policy: Any) -> None:
        self._policy = policy

    def broadcast(self, msg: Message, exclude: str | None = None) -> None:
        pass

    def peers(self) -> list[Peer]:
        return []

    def presence_changed(self) -> None:
        pass

    def block(self, peer_id: str, name: str = "") -> None:
        self._policy.block(peer_id, name)

    def unblock(self, peer_id: str) -> None:
        self._policy.unblock(peer_id)


class Publisher(Protocol):
    """Flet's PubSubClient, narrowed to the one call the hub makes."""

    def send_all_on_topic(self, topic: str, message: Any) -> None: ...


@dataclass
class Hub(ConvHubMethods, MeshSideMethods, HistoryReads, PresenceMethods, TrustMethods,
          StoredMessages, PageReceiver):
    """Process-wide state shared by every session: acceptance, history, roster, fan-out."""

    peer_id: str
    device: str = "desktop"
    history_limit: int = HISTORY_IN_MEMORY
    transport: Any = None  # a Transport; NullTransport when None is given
    store: Any = None  # a store.Store; memstore.MemoryStore when None is given
    store_error: str = ""  # why history is not (or no longer) kept, shown to people
    lan_warning: str = ""  # why other devices may not find this one (e.g. no multicast lock)
    # The network doctor, set by the node when the LAN is on (the UI's "Check network").
    network_check: Callable[[], Awaitable[Any]] | None = None
    # name -> the session whose leave waits out its grace (HubSession.leave): a reload's new
    # session of the same name takes over without "left" and "joined" lines.
    leaving: dict[str, Any] = field(default_factory=dict, repr=False)
    # session key -> its owner (``authors``), for the sessions joined here: a name online here
    # is not taken by another browser's join (HubSession.join)
    local_owners: dict[str, bytes] = field(default_factory=dict, repr=False)
    name_holds: NameHolds = field(default_factory=NameHolds, repr=False)  # left, not yet free
    trust: Any = None  # fletchat.trust.Trust when the node has an identity (keys, blocks)
    session_rate: tuple[float, float] | None = None  # (per second, burst) for HubSession.send
    announcements: Any = None  # a budgets.AddressBudget: which joins get a history line
    posts: Any = None  # a budgets.AddressBudget: posts per client address and per device
    wall: Callable[[], int] = wall_ms  # our wall clock in ms (tests drive it)
    quota_limits: QuotaLimits = field(default_factory=QuotaLimits)  # per-origin budgets
    files: Any = None  # fletchat.files.share.FileShare when files are on (a data dir and a mesh)
    authors: Any = None  # authors.Authorship: who wrote what here; in memory when None is given
    _listeners: list[Callable[[HubEvent], None]] = field(init=False, default_factory=list)
    _publisher: Publisher | None = field(init=False, default=None)
    # Set when the process is stopping: the sessions' screens are going away, so events are no
    # longer rendered (the store and the other listeners still get them).
    screens_off: bool = field(init=False, default=False)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._policy = KeyTrust(self.trust, self.peer_id) if self.trust is not None else NoTrust()
        if self.store is None:
            self.store = MemoryStore(self.history_limit)
            self._writer: Any = ImmediateWriter(self.store, on_commit=self._committed)
        else:
            self._writer = StoreWriter(self.store, on_commit=self._committed)
        if self.transport is None:
            self.transport = NullTransport(self._policy)
        if self.authors is None:
            from .authors import Authorship

            self.authors = Authorship()
        self.store_error = self.store_error or fault_text(self.store.fault)
        self.clock = HLC(self.peer_id, self.wall, last=self.store.last_hlc(self.peer_id))
        self.roster = Roster()
        self.answers = CatchUpAnswers(self.store, self._policy.knows)
        self.outbox = Outbox(self.store, self.peer_id, self._publish)
        self._quotas = Quotas(self.quota_limits)
        self._accept_lock = threading.Lock()  # one acceptance decision at a time
        self._qlock = threading.Lock()  # the maps below (also touched by the writer thread)
        self._seen: OrderedDict[str, bool] = OrderedDict()  # id -> verified
        self._queued: dict[str, tuple[Message, bool, int]] = {}  # not yet committed
        self._queued_slots: dict[tuple[str, int], str] = {}
        self._failed: OrderedDict[str, None] = OrderedDict()
        self._own_seq = self.store.next_seq(self.peer_id)  # the seq post() gives next
        self._own_ticket = 0  # the writer's ticket of the last message post() queued
        self._origins = set(self.store.have_summary())
        self._channels = {DEFAULT_CHANNEL, *self.store.channels()}
        self._bg = ThreadPoolExecutor(1, thread_name_prefix="hub-outbox")
        self._outbox_due: tuple[list[str], list[str]] = ([], [])  # (sent, delivered) ids
        self._due_summaries: dict[str, dict[str, int]] = {}  # MeshSideMethods._receipts_later
        self._due_refusals: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self._pending_job: Any = None  # HistoryReads.pending_ids_async
        self._identity_warnings: list[IdentityWarning] = []
        self.conv = ConvState(self)  # replies, reactions, edits, deletes, typing, read marks

    def close(self, timeout: float | None = None) -> bool:
        """Finish outbox work, flush what is queued for the database and close it; within
        ``timeout`` seconds if given. ``False`` if that ran out: the database is then left open
        (SQLite keeps it whole; an unfinished batch was never acknowledged, so peers resend it)."""
        end = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if end is None else max(0.0, end - time.monotonic())

        try:
            self._bg.submit(lambda: None).result(left())  # one worker: all earlier work is done
        except (TimeoutError, RuntimeError):  # RuntimeError: closed before
            pass
        self._bg.shutdown(wait=end is None)
        self._writer.close(left())
        if self._writer.running:
            log.error("the store writer did not finish within %.1f s; leaving the database open",
                      timeout)
            return False
        self.store.close()
        self.authors.close()
        return True

    # ---- wiring ----
    def use_pubsub(self, publisher: Publisher) -> None:
        """Fan out through Flet's pubsub (any session's client reaches every session)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = publisher

    def add_listener(self, listener: Callable[[HubEvent], None]) -> Callable[[], None]:
        """Subscribe a non-Flet consumer (headless peer, relay, tests); returns the unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _publish(self, event: HubEvent) -> None:
        with self._lock:
            publisher, listeners = self._publisher, list(self._listeners)
        if publisher is not None and not self.screens_off:
            publisher.send_all_on_topic(PUBSUB_TOPIC, event)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken consumer must not stop the others
                log.exception("hub listener failed")

    # ---- messages written here ----
    def post(self, msg: Message) -> Message | None:
        """A message written here: stamp, queue for the store, show locally, send to the LAN.
        Returns the stamped message, ``None`` for a duplicate; ``ReadOnlyError`` if the history
        is already read-only (joins and leaves are then only shown here). The insert commits
        on the writer's thread after the message went out (``hub_writes``): held in memory
        until then, and if it fails, ``StoreFailed`` names it as not saved on this device."""
        self.conv.check_local(msg)  # the author-only rule holds for this device too
        with self._accept_lock:
            if self._seen_verified(msg.id) is not None:
                return None
            stamp = self.clock.now()
            if self.store.read_only:
                if msg.kind in (KIND_JOIN, KIND_LEAVE):
                    msg = replace(msg, hlc=stamp.encode())
                    self._publish(msg)
                    return msg
                raise ReadOnlyError(self.store_error)
            if self._stored_long_ago(msg, self._own_seq):
                return None
            msg = replace(msg, hlc=stamp.encode(), seq=self._own_seq)
            try:  # into the store's journal, then queued: a full disk fails the send here
                self._queue_own(msg, stamp, State.SENT if self.roster.peer_count() else State.PENDING)
            except StoreFull as err:
                self._storage_fault(str(err))
                raise ReadOnlyError(self.store_error) from err
            self._own_seq += 1
        self._note_channel(msg.channel)
        self._publish(self.conv.accepted(msg) if msg.conv or self.conv.active else msg)
        self.transport.broadcast(msg)
        return msg

    # ---- the acceptance pipeline (docs/protocol.md, "Acceptance") ----
    def receive(self, msg: Message, from_peer: str, *, verified: bool,
                relay: bool = True) -> Acceptance:
        """A validated message from ``from_peer``; ``verified``: its signature was checked
        against its origin's known key. Live messages (``relay``) go on to other peers."""
        if self._policy.is_blocked(msg.origin):
            return self._refuse(msg, from_peer, f"{msg.origin} is blocked here")
        known = self._seen_verified(msg.id)
        if known is not None and (known or not verified):
            return Acceptance(Outcome.DUPLICATE, "", msg)
        with self._accept_lock:
            held = self._held(msg)
            action, reason = self._judge(msg, from_peer, verified, relay, held)
            if action is Action.REFUSE:
                return self._refuse(msg, from_peer, reason)
            if action is Action.DUPLICATE:
                return Acceptance(Outcome.DUPLICATE, "", msg)
            self._take(msg, verified, action, held)
        if action is Action.UPGRADE:
            if msg.conv is not None:
                self.conv.upgraded(msg)  # a held unverified edit or delete applies now
            return Acceptance(Outcome.DUPLICATE, "already here; now verified", msg)
        self._note_channel(msg.channel)
        self._publish(self.conv.accepted(msg, verified, from_peer) if msg.conv or self.conv.active else msg)
        if relay:
            self.transport.broadcast(msg, exclude=from_peer)
        return Acceptance(Outcome.ACCEPTED, "", msg)

    def _judge(self, msg: Message, from_peer: str, verified: bool, relay: bool,
               held: tuple[Held | None, Held | None]) -> tuple[Action, str]:
        """The acceptance rules in order (docs/protocol.md, Acceptance); the first that fails
        gives the reason."""
        action, reason = self.conv.judge(msg, from_peer, verified, relay, held) or judge_slot(
            msg, verified, *held)
        if action in (Action.REFUSE, Action.DUPLICATE):
            return action, reason
        now = self.wall()
        reason = self._after_slot(msg, action, now, relay,
                                  lambda: self._over_quota(msg, from_peer, verified, now, action))
        return (Action.REFUSE, reason) if reason else (action, "")

    def _after_slot(self, msg: Message, action: Action, now: int, live: bool,
                    over_quota: Callable[[], str]) -> str:
        """The rules after the slot rule, in order: own origin, stamp, quota (``over_quota``,
        asked only when the stamp passed: it charges), read-only, clock; the first reason."""
        if msg.origin == self.peer_id and action is not Action.UPGRADE:
            return OWN_ORIGIN
        return (check_stamp(msg, now, live=live)
                or over_quota()
                or self._read_only_reason()
                or self._observe(msg))

    def _read_only_reason(self) -> str:
        """Why nothing from a peer can be stored now ("" while the history is writable)."""
        return f"this device cannot store messages now: {self.store.fault}" if (
            self.store.read_only) else ""

    def _observe(self, msg: Message) -> str:
        """Move our clock past ``msg`` (bounded: clock.MAX_ADOPT_MS); a reason if refused."""
        try:
            self.clock.advance(Stamp.decode(msg.hlc))
        except ClockDriftError as err:
            return str(err)
        return ""

    def _take(self, msg: Message, verified: bool, action: Action,
              held: tuple[Held | None, Held | None]) -> None:
        displaced = tuple(h.msg.id for h in held if h is not None and h.msg.id != msg.id
                          ) if action is Action.REPLACE else ()  # the unverified rows it replaces
        self._queue_many([(msg, verified, displaced)])

    def _refuse(self, msg: Message, from_peer: str, reason: str) -> Acceptance:
        log.info("refused message %s from %s: %s", msg.id, from_peer, reason)
        return Acceptance(Outcome.REFUSED, reason, msg)

    def _over_quota(self, msg: Message, from_peer: str, verified: bool, now: int,
                    action: Action) -> str:
        if action is Action.UPGRADE:
            return ""  # already held and counted
        return self._quotas.check(Arrival(
            msg, from_peer, verified, now, new_origin=msg.origin not in self._origins,
            new_channel=msg.channel not in self._channels))

    # ---- channels ----
    def problems(self) -> list[str]:
        """What people are told is wrong here: the history read-only, the LAN out of reach."""
        return [p for p in (self.store_error, self.lan_warning) if p]

    def channels(self) -> list[str]:
        with self._lock:
            names = set(self._channels)
        return sorted(names, key=lambda c: (c != DEFAULT_CHANNEL, c.startswith(DM_PREFIX), c))

    def _note_channel(self, channel: str) -> None:
        with self._lock:
            if channel in self._channels:
                return
            self._channels.add(channel)
        self._publish(ChannelsChanged(tuple(self.channels())))
