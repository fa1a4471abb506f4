"""A catch-up page through the acceptance pipeline in one pass (``Hub.receive_page``).

A ``sync`` page carries up to 100 messages, mostly of one origin, in one channel, stamped within
a minute or two. ``Hub.receive`` judges one message at a time: a lock round, a look at the
writer's queue and the store, a quota update and a hand-off to the store writer each. A page
gives every message exactly the outcome that ``receive(msg, from_peer, verified=...,
relay=False)`` called for each in order gives when each is stored before the next is judged
(always so in memory; on SQLite ``receive`` can meet an unverified row that a verified message
already replaced but the writer has not yet deleted: here it is gone). tests/test_hub_pages.py
compares the two on mixed and random pages. Per run of plain messages: one round of the
acceptance lock, one look at the writer's queue and one store query for what may already hold
their ids and slots, the blocked-origin check once per origin, one hand-off of the run's records
to the store writer and then the events, in order. What the run itself takes is overlaid on what was held before it, so
a later message of the page sees an earlier one as ``receive`` would. Conversation messages
(replies, reactions, edits, deletes) go through ``receive`` one by one, in their place: their
rules read what the page's earlier messages left in the hub.

The time is read once per run (the page arrived then); the clock still advances past each
accepted message in order (after the run, in one lock round: nothing in the run reads it), and
quotas are charged message by message, as ``receive`` does. Each stamp is parsed once, and the
run's records for the writer are built as its messages are taken.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .acceptance import OWN_ORIGIN, Action, Held, Quotas, judge_slot, stamp_checked
from .clock import Stamp
from .events import Acceptance, Outcome
from .model import Message
from .outbox import wire
from .store import Record

Slot = tuple[str, int]

class PageReceiver:
    """Mixed into ``Hub``: ``receive_page``. Uses the hub's maps and locks (hub.py,
    hub_writes.py)."""

    peer_id: str
    store: Any
    conv: Any
    wall: Callable[[], int]
    clock: Any
    _policy: Any
    _writer: Any
    _accept_lock: threading.Lock
    _qlock: threading.Lock
    _seen: OrderedDict[str, bool]
    _queued: dict[str, tuple[Message, bool, int]]
    _queued_slots: dict[Slot, str]
    _origins: set[str]
    _channels: set[str]
    _quotas: Quotas
    # The hub's own methods (annotations only: a stub here would shadow another mixin's).
    receive: Callable[..., Acceptance]
    _refuse: Callable[[Message, str, str], Acceptance]
    _observe: Callable[[Message], str]
    _remember_locked: Callable[[str, bool], None]
    _note_channel: Callable[[str], None]
    _after_slot: Callable[..., str]
    _read_only_reason: Callable[[], str]
    _queue_many: Callable[..., int]
    _publish: Callable[[Any], None]

    def receive_page(self, items: Sequence[tuple[Message, bool]],
                     from_peer: str) -> list[Acceptance]:
        """The verdicts on a catch-up page's (message, verified) pairs, in order: each exactly
        what ``receive(msg, from_peer, verified=verified, relay=False)`` would decide."""
        out: list[Acceptance] = []
        run: list[tuple[Message, bool]] = []
        for msg, verified in items:
            if msg.conv is None:
                run.append((msg, verified))
                continue
            out += self._receive_run(run, from_peer)
            run = []
            out.append(self.receive(msg, from_peer, verified=verified, relay=False))
        out += self._receive_run(run, from_peer)
        return out

    def _receive_run(self, run: list[tuple[Message, bool]], from_peer: str) -> list[Acceptance]:
        if not run:
            return []
        with self._accept_lock:
            page = PageRun(self, from_peer, [m for m, _ in run])
            verdicts = [page.judge(msg, verified) for msg, verified in run]
            self.clock.advance_many(page.stamps)
            if page.taken:
                self._queue_many(page.taken, page.records)
        noted: set[str] = set()  # a channel is noted once: the hub's first note is the one
        for acc, (msg, verified) in zip(verdicts, run, strict=True):
            if acc.outcome is Outcome.ACCEPTED:
                if msg.channel not in noted:
                    noted.add(msg.channel)
                    self._note_channel(msg.channel)
                self._publish(self.conv.accepted(msg, verified, from_peer)
                              if self.conv.active else msg)
        return verdicts


class PageRun:
    """One run of a page, judged under the acceptance lock: what was held before it (the
    writer's queue, then the store, each looked at once), overlaid with what the run takes."""

    def __init__(self, hub: PageReceiver, from_peer: str, msgs: list[Message]) -> None:
        self.hub = hub
        self.from_peer = from_peer
        self.now = hub.wall()
        self.seen: dict[str, bool | None] = {}  # None: forgotten (replaced) in this run
        self.by_id: dict[str, Held | None] = {}  # None: its row was replaced in this run
        self.slots: dict[Slot, Held | None] = {}
        self.taken: list[tuple[Message, bool, tuple[str, ...]]] = []
        self.records: list[Record] = []  # the taken messages as the writer stores them
        self.stamps: list[Stamp] = []  # of what passed the rules: the clock moves past them
        self.new_channels: set[str] = set()  # channels this run brings (not yet in the hub's)
        self._blocked: dict[str, bool] = {}
        self._look(msgs)

    def _look(self, msgs: list[Message]) -> None:
        """What is held for the run's ids and slots: the writer's queue first, then the store
        (``Hub._held``'s precedence), as if every message taken so far were stored: an
        unverified row that a queued verified message replaces is gone. The queue's lock is
        held over the store query, so a batch committed meanwhile is seen in one place or the
        other (the writer leaves the queue only after its commit)."""
        hub = self.hub
        with hub._qlock:
            seen, queued, queued_slots = hub._seen, hub._queued, hub._queued_slots

            def holder(slot: Slot) -> tuple[Message, bool, int] | None:
                q = queued.get(queued_slots.get(slot, ""))
                return q if q is not None and (q[0].origin, q[0].seq) == slot else None

            def replaced(msg: Message, verified: bool, slot: Slot) -> bool:
                q = holder(slot)
                return not verified and q is not None and q[1] and q[0].id != msg.id

            for m in msgs:
                slot = (m.origin, m.seq)
                if (known := seen.get(m.id)) is not None:
                    self.seen[m.id] = known
                if (q := queued.get(m.id)) is not None and not replaced(q[0], q[1], (
                        q[0].origin, q[0].seq)):
                    self.by_id[m.id] = Held(q[0], q[1])
                if (s := holder(slot)) is not None:
                    self.slots[slot] = Held(s[0], s[1])
            store = hub.store
            ask = [(m.id, m.origin, m.seq) for m in msgs
                   if (m.id not in self.by_id or (m.origin, m.seq) not in self.slots)
                   and store.may_hold(m.id, m.origin, m.seq)]
            for rec in store.lookup_many(ask) if ask else ():
                slot = (rec.msg.origin, rec.seq or 0)
                q = queued.get(rec.msg.id)
                if replaced(rec.msg, rec.verified, slot) or (
                        q is not None and q[1] and not rec.verified):
                    continue  # a verified message on its way to the store replaces it
                held = Held(wire(rec), rec.verified)
                self.by_id.setdefault(rec.msg.id, held)
                if rec.seq is not None:
                    self.slots.setdefault(slot, held)

    def judge(self, msg: Message, verified: bool) -> Acceptance:
        """``Hub.receive``'s verdict (relay=False) on ``msg``, taking it into the run if due."""
        hub = self.hub
        if self._is_blocked(msg.origin):
            return hub._refuse(msg, self.from_peer, f"{msg.origin} is blocked here")
        known = self.seen.get(msg.id)
        if known is not None and (known or not verified):
            return Acceptance(Outcome.DUPLICATE, "", msg)
        slot = (msg.origin, msg.seq)
        held = (self.by_id.get(msg.id), self.slots.get(slot))
        action, reason = judge_slot(msg, verified, *held)
        if action is Action.DUPLICATE:
            return Acceptance(Outcome.DUPLICATE, "", msg)
        stamp = None
        if action is not Action.REFUSE:
            reason, stamp = self._rules(msg, verified, action)
        if reason or stamp is None:
            return hub._refuse(msg, self.from_peer, reason)
        self._take(msg, verified, action, held, slot)
        self.records.append(Record(msg, stamp, msg.seq, verified=verified))
        if action is Action.UPGRADE:
            return Acceptance(Outcome.DUPLICATE, "already here; now verified", msg)
        return Acceptance(Outcome.ACCEPTED, "", msg)

    def _is_blocked(self, origin: str) -> bool:
        blocked = self._blocked.get(origin)
        if blocked is None:
            blocked = self._blocked[origin] = bool(self.hub._policy.is_blocked(origin))
        return blocked

    def _rules(self, msg: Message, verified: bool, action: Action) -> tuple[str, Stamp | None]:
        """``Hub._after_slot`` for a page (same rules, same order, same reasons): own origin,
        stamp, quota, read-only, clock; and the message's stamp when they all hold. The stamp is
        parsed once, and the clock is moved past the run's stamps in one go after the run
        (``HLC.advance_many``: the same steps in the same order)."""
        hub = self.hub
        if msg.origin == hub.peer_id and action is not Action.UPGRADE:
            return OWN_ORIGIN, None
        reason, stamp = stamp_checked(msg, self.now, live=False)
        if stamp is None:
            return reason, None
        if reason := self._over_quota(msg, verified, action, stamp.wall_ms):
            return reason, None
        if read_only := hub._read_only_reason():
            return read_only, None
        if stamp.wall_ms - self.now > hub.clock.max_drift_ms:  # the clock's own bound decides
            return hub._observe(msg), stamp
        self.stamps.append(stamp)
        return "", stamp

    def _over_quota(self, msg: Message, verified: bool, action: Action, stamp_ms: int) -> str:
        if action is Action.UPGRADE:
            return ""  # already held and counted
        hub = self.hub
        new_channel = msg.channel not in hub._channels and msg.channel not in self.new_channels
        return hub._quotas.charge(msg, stamp_ms, self.from_peer, self.now,
                                  flags=(verified, msg.origin not in hub._origins, new_channel))

    def _forget(self, held: tuple[Held | None, Held | None]) -> None:
        """The rows a verified message replaces, as the store deletes them: their ids and slots
        are free for the rest of the run (as if each message were stored before the next)."""
        for h in held:
            if h is None:
                continue
            self.by_id[h.msg.id] = None
            slot = (h.msg.origin, h.msg.seq)
            if (in_slot := self.slots.get(slot)) is not None and in_slot.msg.id == h.msg.id:
                self.slots[slot] = None

    def _take(self, msg: Message, verified: bool, action: Action,
              held: tuple[Held | None, Held | None], slot: Slot) -> None:
        displaced: tuple[str, ...] = ()
        if action is Action.REPLACE:  # the unverified rows it displaces are gone
            displaced = tuple(h.msg.id for h in held if h is not None and h.msg.id != msg.id)
            for gone in displaced:
                self.seen[gone] = None
            self._forget(held)
        mine = Held(msg, verified)
        self.by_id[msg.id] = self.slots[slot] = mine
        self.seen[msg.id] = verified
        self.taken.append((msg, verified, displaced))
        self.hub._origins.add(msg.origin)
        if action is not Action.UPGRADE:
            self.new_channels.add(msg.channel)
