"""The hub's conversation part: the acceptance rules for reactions, edits and deletes, the events
folded into rows, redaction, typing, read marks and reach. One per hub (``Hub.conv``).

The hub calls ``judge`` inside its one acceptance pipeline (before the slot rules) and
``accepted`` after a message is taken (written here or from a peer); what to publish comes back.
Time is injected (``clock``); the store and the LAN are reached through the hub.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..acceptance import Action, Held
from ..model import (
    EVENT_KINDS,
    KIND_CHAT,
    KIND_DELETE,
    KIND_EDIT,
    KIND_REACTION,
    Message,
    ValidationError,
)
from ..protocol import ReadFrame, TypingFrame, encode_frame
from ..rooms import is_sealed
from .fields import vouched
from .held import HeldReactions
from .kinds import NOT_AUTHOR, Delete, Edit, Reaction, ReplyRef, make_snippet
from .orphans import RESTORED, Orphans
from .reducer import DELETED_TEXT, RowState, reduce_row
from .signals import (
    EDIT_LIMIT,
    REACTION_LIMIT,
    READ_LIMIT,
    FloodLimit,
    ReadMark,
    ReadMarks,
    TypingBoard,
    person_key,
)
from .views import ReadChanged, RowChanged, TypingChanged

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger("fletchat.conversation")

# Reactions from all origins behind one IP address (throw-away identities share it), per 10 s.
ADDRESS_REACTION_LIMIT = (60, 10.0)
TOO_MANY_REACTIONS = "too many reactions; slow down"
TOO_MANY_EDITS = "too many edits; slow down"
UNVERIFIED_CHANGE = "an unverified edit or delete cannot change a signed message"
NOT_A_MESSAGE = "only chat messages can be edited or deleted"
UNVOUCHED = "a redacted message must come with the author's delete that names it"
REACH_TRACKED = 4096  # own messages whose holders are remembered (reach)


def as_event(msg: Message) -> Reaction | Edit | Delete:
    c = msg.conv
    assert c is not None
    if msg.kind == KIND_REACTION:
        return Reaction(msg.id, msg.origin, msg.author, c.target, msg.hlc, emoji=c.emoji, on=c.on)
    if msg.kind == KIND_EDIT:
        return Edit(msg.id, msg.origin, msg.author, c.target, msg.hlc, text=msg.text)
    return Delete(msg.id, msg.origin, msg.author, c.target, msg.hlc, target_seq=c.target_seq,
                  erases=c.erases)


def is_stub(msg: Message) -> bool:
    return msg.conv is not None and (msg.conv.redacted is not None or bool(msg.conv.redacted_by))


class ConvState:
    def __init__(self, hub: Hub, clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.now = clock
        self._lock = threading.RLock()
        self._events: dict[str, dict[str, Message]] = {}  # target id -> event id -> event
        self._orphans = Orphans()  # events whose target is not here yet, bounded
        self._reactions = HeldReactions()  # who reacted to what; only the latest is held
        self._unverified: set[str] = set()  # ids of events whose origin's key was unknown
        self._limits = {
            KIND_REACTION: FloodLimit(*REACTION_LIMIT), KIND_EDIT: FloodLimit(*EDIT_LIMIT),
            "address": FloodLimit(*ADDRESS_REACTION_LIMIT), "read": FloodLimit(*READ_LIMIT),
        }
        self._addresses: dict[str, str] = {}  # connected peer id -> its IP address
        self.typing_board = TypingBoard()
        self.marks = ReadMarks()
        self._holders: OrderedDict[str, set[str]] = OrderedDict()  # message id -> peer ids
        self._summaries: dict[str, dict[str, int]] = {}  # peer -> its last ``have`` (reach)
        self.load()

    @property
    def active(self) -> bool:
        """Whether plain rows need a look (someone is typing, or events wait for a target)."""
        return bool(self._orphans) or self.typing_board.active()

    def load(self) -> None:
        """Fold in the events already stored (called once, off any event loop)."""
        for rec in self.hub.store.conversation_events():
            msg = rec.msg
            if msg.conv is not None:
                self._index(msg, rec.verified, RESTORED)

    # ---- acceptance (inside the hub's pipeline) ----
    def judge(self, msg: Message, from_peer: str, verified: bool, live: bool,
              held: tuple[Held | None, Held | None]) -> tuple[Action, str] | None:
        """A verdict that ends the pipeline, or None to go on with the usual rules."""
        if msg.conv is None:
            return None
        if is_stub(msg):
            if not vouched(msg):  # the connection checks this too; the hub never trusts it
                return Action.REFUSE, UNVOUCHED
            # A deleted slot we already hold (with or without its text): nothing to do.
            return (Action.DUPLICATE, "") if held[0] is not None else None
        if msg.kind not in EVENT_KINDS or msg.conv is None:
            return None
        if live and (reason := self._flood(msg, from_peer)):
            return Action.REFUSE, reason
        target = self.hub.find(msg.conv.target)
        if target is None:
            with self._lock:
                reason = self._orphans.refusal(msg.origin, self.address_of(from_peer))
            return (Action.REFUSE, reason) if reason else None
        reason = self.check_target(msg, verified, *target)
        if not reason and msg.kind == KIND_REACTION:
            with self._lock:
                reason = self._reactions.refusal(msg.conv.target, (msg.origin, msg.author))
        return (Action.REFUSE, reason) if reason else None

    def check_local(self, msg: Message) -> None:
        """``ValidationError`` if an event written here breaks the rules (its target must be
        here: this device only writes events about messages it shows)."""
        if msg.conv is None or msg.kind not in EVENT_KINDS:
            return
        target = self.hub.find(msg.conv.target)
        if target is None:
            raise ValidationError("That message is not here.")
        reason = self.check_target(msg, True, target[0], False)
        if reason:
            raise ValidationError(reason[:1].upper() + reason[1:].rstrip(".") + ".")

    def check_target(self, msg: Message, verified: bool, target: Message,
                     target_verified: bool) -> str:
        """The author-only rule for edits and deletes ("" when allowed)."""
        if target.channel != msg.channel:
            return "not in the channel of the message it is about"
        if msg.kind == KIND_REACTION:
            return "" if target.kind not in EVENT_KINDS else "only messages can be reacted to"
        if target.kind != KIND_CHAT:
            return NOT_A_MESSAGE
        if not target.origin or (target.origin, target.author) != (msg.origin, msg.author):
            return NOT_AUTHOR
        if target_verified and not verified:
            return UNVERIFIED_CHANGE
        return ""

    def address_of(self, from_peer: str) -> str:
        """The IP address of the connection ``from_peer`` (its id when unknown)."""
        return self._addresses.get(from_peer, from_peer)

    def _flood(self, msg: Message, from_peer: str) -> str:
        now = self.now()
        if msg.kind == KIND_REACTION:
            address = self.address_of(from_peer)
            if not self._limits["address"].allow(address, now):
                return TOO_MANY_REACTIONS
            if not self._limits[KIND_REACTION].allow(msg.origin, now):
                return TOO_MANY_REACTIONS
            return ""
        return "" if self._limits[KIND_EDIT].allow(msg.origin, now) else TOO_MANY_EDITS

    def allow_local(self, kind: str, person: str) -> bool:
        """The same flood limits for people on this device (per person)."""
        return self._limits[kind if kind == KIND_REACTION else KIND_EDIT].allow(person, self.now())

    # ---- after acceptance ----
    def accepted(self, msg: Message, verified: bool = True, from_peer: str = "") -> Any:
        """``msg`` was taken (stored or queued). Returns what to publish: the message itself for
        rows, a ``RowChanged`` for events (their row redraws; they are no row of their own)."""
        if msg.kind == KIND_CHAT and self.typing_board.has(
                msg.channel, person_key(msg.origin, msg.author)):
            self._stopped_typing(msg)
        if msg.kind not in EVENT_KINDS or msg.conv is None:
            if not is_stub(msg):
                self._arrived(msg, verified)
            return msg
        target = self._index(msg, verified, self.address_of(from_peer))
        if target is not None and msg.kind == KIND_DELETE and not self.check_target(
                msg, True, target[0], False):
            self._redact(msg)
        return RowChanged(msg.conv.target, msg.channel, None, cause=msg)

    def _index(self, msg: Message, verified: bool, address: str) -> tuple[Message, bool] | None:
        """Add an event; returns its target as the hub holds it (None: kept as an orphan)."""
        assert msg.conv is not None
        target = self.hub.find(msg.conv.target)
        with self._lock:
            if verified:
                self._unverified.discard(msg.id)
            bucket = self._events.setdefault(msg.conv.target, {})
            if msg.id in bucket:
                return target
            if msg.kind == KIND_REACTION:
                hold, replaced = self._reactions.keep(msg)
                bucket.pop(replaced, None)
                if not hold:
                    return target
            bucket[msg.id] = msg
            if not verified:
                self._unverified.add(msg.id)
            if target is None:
                self._orphans.add(msg, msg.conv.target, address)
        return target

    def upgraded(self, msg: Message) -> None:
        """An event held unverified arrived again, now verified (its origin's key became known):
        it applies from now on, and a delete erases."""
        with self._lock:
            if msg.id not in self._unverified:
                return
            self._unverified.discard(msg.id)
        assert msg.conv is not None
        target = self.hub.find(msg.conv.target)
        if target is not None and msg.kind == KIND_DELETE and not self.check_target(
                msg, True, target[0], False):
            self._redact(msg)
        self.hub.publish(RowChanged(msg.conv.target, msg.channel, None, cause=msg))

    def _changes(self, target_verified: bool, events: list[Message]) -> list[Message]:
        """The events that may change a target: an unverified edit or delete never changes a
        verified message, also when it came first and waited (docs/security.md)."""
        if not target_verified:
            return events
        with self._lock:
            return [e for e in events if e.kind == KIND_REACTION or e.id not in self._unverified]

    def _arrived(self, msg: Message, verified: bool = True) -> None:
        """A row arrived: events that waited for it now apply (an early delete erases it)."""
        with self._lock:
            waiting = self._orphans.take(msg.id)
        for ev in self._changes(verified, waiting):
            if ev.kind == KIND_DELETE and not self.check_target(ev, True, msg, False):
                self._redact(ev)

    def _redact(self, delete: Message) -> None:
        """Erase the target's text (and its author's edits) from the store, once what is
        queued for it is written."""
        def run() -> None:
            try:
                self.hub.flush(5.0)
                self.hub.store.redact(delete)
            except Exception:
                log.exception("erasing the text of %s failed", delete.conv.target if delete.conv
                              else "?")
        self.hub.background(run)

    def _stopped_typing(self, msg: Message) -> None:
        self.typing_board.stopped(msg.channel, person_key(msg.origin, msg.author))
        self.hub.publish(TypingChanged(msg.channel, tuple(self.typing_names(msg.channel))))

    # ---- what a row shows ----
    def events_for(self, msg_id: str) -> list[Message]:
        """The events that apply to ``msg_id``'s row (see ``_changes``)."""
        with self._lock:
            events = list(self._events.get(msg_id, {}).values())
            doubtful = any(e.id in self._unverified and e.kind != KIND_REACTION for e in events)
        if not doubtful:
            return events
        found = self.hub.find(msg_id)
        return self._changes(found is not None and found[1], events)

    def row_state(self, msg: Message, me: tuple[str, str] = ("", "")) -> RowState:

        events = [as_event(e) for e in self.events_for(msg.id)]
        row = reduce_row(msg, events, me)
        if is_stub(msg) and not row.deleted:
            row = replace(row, text="", deleted=True, edited=False, reactions=())
        reply = msg.conv.reply if msg.conv is not None else None
        if reply is not None:
            row = replace(row, reply=true_quote(self, reply, msg.channel))
        return row

    def is_deleted(self, msg_id: str) -> bool:
        with self._lock:
            has_delete = any(e.kind == KIND_DELETE for e in self._events.get(msg_id, {}).values())
        events = [e for e in self.events_for(msg_id) if e.kind == KIND_DELETE] if has_delete else []
        found = self.hub.find(msg_id) if events else None
        if found is None:
            return False
        return any(e.kind == KIND_DELETE and not self.check_target(e, True, found[0], False)
                   for e in events)

    def search_filter(self, hits: list[tuple[Message, str]]) -> list[tuple[Message, str]]:
        return search_filter(self, hits)

    # ---- typing and read receipts ----
    def typing_names(self, channel: str, me: str = "") -> list[str]:
        return self.typing_board.typing(channel, self.now(), me)

    def local_typing(self, name: str, channel: str) -> None:
        """A person here typed (already throttled by their session): tell the LAN and the
        other sessions here."""
        self._note_typing(self.hub.peer_id, name, channel)
        self.hub.send_live(encode_frame(TypingFrame(name, channel)))

    def local_read(self, name: str, channel: str, upto: str) -> None:
        if not self._limits["read"].allow(f"{person_key(self.hub.peer_id, name)}/{channel}",
                                          self.now()):
            return
        self._note_read(self.hub.peer_id, name, channel, upto)
        self.hub.send_live(encode_frame(ReadFrame(name, channel, upto)))

    def peer_signal(self, peer_id: str, frame: TypingFrame | ReadFrame) -> None:
        """A live frame from a connected peer: the person is (that peer, the name it gives)."""
        if isinstance(frame, TypingFrame):
            self._note_typing(peer_id, frame.name, frame.channel)
        elif self._limits["read"].allow(f"{person_key(peer_id, frame.name)}/{frame.channel}",
                                        self.now()):
            self._note_read(peer_id, frame.name, frame.channel, frame.upto)

    def _note_typing(self, origin: str, name: str, channel: str) -> None:
        if self.typing_board.note(channel, person_key(origin, name), name, self.now(),
                                  self.address_of(origin)):
            self.hub.publish(TypingChanged(channel, tuple(self.typing_names(channel))))

    def _note_read(self, origin: str, name: str, channel: str, upto: str) -> None:
        if self.marks.update(ReadMark(person_key(origin, name), name, channel, upto),
                             self.address_of(origin)):
            self.hub.publish(ReadChanged(channel, name, upto))

    def marks_in(self, channel: str) -> list[ReadMark]:
        """Every reader's position in ``channel`` (the relay hands them to static clients)."""
        return self.marks.in_channel(channel)

    def seen_by(self, msg: Message) -> list[str]:
        return list(self.marks.seen_by(msg.channel, msg.hlc, person_key(msg.origin, msg.author)))

    # ---- reach ----
    def peer_up(self, peer_id: str, address: str) -> None:
        with self._lock:
            self._addresses[peer_id] = address

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None:
        with self._lock:
            for i in ids:
                self._holders.setdefault(i, set()).add(peer_id)
                self._holders.move_to_end(i)
            while len(self._holders) > REACH_TRACKED:
                self._holders.popitem(last=False)

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None:
        with self._lock:
            self._summaries[peer_id] = dict(summary)
            while len(self._summaries) > REACH_TRACKED:
                self._summaries.pop(next(iter(self._summaries)))

    def reach(self, msg: Message, connected: set[str]) -> tuple[int, int]:
        """(devices holding ``msg``, devices known): this one, its origin, peers that acked it,
        peers whose catch-up summary covers its seq; out of this one plus connected peers."""
        me = self.hub.peer_id
        with self._lock:
            holders = set(self._holders.get(msg.id, ()))
            summaries = dict(self._summaries)
        holders |= {me, msg.origin}
        holders |= {p for p, s in summaries.items() if msg.seq and s.get(msg.origin, 0) >= msg.seq}
        devices = {me} | connected | (holders - {me})
        return len(holders & devices), len(devices)


def search_filter(conv: ConvState, hits: list[tuple[Message, str]]) -> list[tuple[Message, str]]:
    """Search indexes every stored text; show only latest texts: an edit's hit stands for
    its message (if it is the latest edit and the message is not deleted), an edited
    original's own old text is left out."""
    out: list[tuple[Message, str]] = []
    seen: set[str] = set()
    for msg, snippet in hits:
        row_msg = msg
        if msg.kind == KIND_EDIT and msg.conv is not None:
            found = conv.hub.find(msg.conv.target)
            if found is None:
                continue
            row_msg = found[0]
        elif msg.kind in EVENT_KINDS:
            continue
        state = conv.row_state(row_msg)
        if state.deleted or row_msg.id in seen:
            continue
        if state.text != (msg.text if msg.kind == KIND_EDIT else row_msg.text) or (
                msg.kind != KIND_EDIT and state.edited):
            continue
        seen.add(row_msg.id)
        out.append((row_msg, snippet))
    return out


def true_quote(conv: ConvState, reply: ReplyRef, channel: str) -> ReplyRef:
    """The quote a reply row shows. The quote and author a reply carries are the replier's words:
    when the parent is here (in the same channel), its own author and latest text are shown
    instead, so nobody can put words in someone else's mouth; "message deleted" once it is."""
    if conv.is_deleted(reply.parent_id):
        return replace(reply, snippet=DELETED_TEXT)
    found = conv.hub.find(reply.parent_id)
    if found is None or found[0].channel != channel or found[0].kind in EVENT_KINDS:
        return reply
    parent = found[0]
    text = reduce_row(parent, [as_event(e) for e in conv.events_for(parent.id)]).text
    return ReplyRef(parent.id, parent.author, "" if is_sealed(text) else make_snippet(text))
