"""The state one message row shows, folded from the message and every event about it.

``reduce_row`` is a pure function of a *set*: the same events in any order, with duplicates, give
the same row. That is what makes catch-up safe: an edit or delete that arrives before its
original (a different peer answered first) is kept (``orphans.Orphans`` in the hub) and applies when the
original arrives, and a delete wins over every edit whatever their stamps say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .kinds import NOT_AUTHOR, AnyEvent, Delete, Edit, Original, Reaction, ReplyRef

# Distinct people (origin, name) whose reactions count on one message. The earliest (by stamp) keep their place:
# a flood of throw-away identities can fill what is left, never push out who is already there.
MAX_REACTORS_PER_MESSAGE = 256
DELETED_TEXT = "message deleted"


@dataclass(frozen=True)
class ReactionSummary:
    emoji: str
    count: int
    who: tuple[str, ...]  # display names, sorted (the tooltip / semantics label)
    mine: bool  # the viewer's own device reacted with it (the chip shows as toggled on)

    @property
    def label(self) -> str:
        """What a screen reader says: "👍 2: Ada, Bob"."""
        return f"{self.emoji} {self.count}: {', '.join(self.who)}"


@dataclass(frozen=True)
class RowState:
    id: str
    author: str
    origin: str
    channel: str
    ts: float
    hlc: str
    text: str  # the latest text; "" once deleted (the row shows DELETED_TEXT)
    edited: bool = False
    deleted: bool = False
    reactions: tuple[ReactionSummary, ...] = ()
    refused: tuple[tuple[str, str], ...] = field(default=())  # (event id, reason), for logs
    reply: ReplyRef | None = None  # the message this one answers (its quote travels with it)
    text_id: str = ""  # the latest edit's id when edited: a private room's text is sealed under it

    @property
    def shown_text(self) -> str:
        return DELETED_TEXT if self.deleted else self.text

    @property
    def search_text(self) -> str:
        """What the full-text index holds for this row: the latest text, nothing once deleted."""
        return "" if self.deleted else self.text


def _key(event: AnyEvent) -> tuple[str, str]:
    return (event.hlc, event.id)


def reduce_row(original: Original, events: Iterable[AnyEvent],
               me: tuple[str, str] = ("", "")) -> RowState:
    """Fold ``events`` (any order, duplicates allowed) into what ``original``'s row shows.

    ``me`` is the viewer as (origin, name) (marks their reactions). Edits and deletes not by
    the original's author (same origin and name) are refused, listed in ``RowState.refused``."""
    seen: dict[str, AnyEvent] = {}
    for ev in events:
        seen.setdefault(ev.id, ev)
    refused: list[tuple[str, str]] = []
    latest_edit: Edit | None = None
    deleted = False
    # (person, emoji) -> latest; a person is (origin, name): a host holds many people
    reactions: dict[tuple[str, str, str], Reaction] = {}
    for ev in sorted(seen.values(), key=_key):
        if ev.target != original.id:
            refused.append((ev.id, "not about this message"))
        elif isinstance(ev, Reaction):
            reactions[(ev.origin, ev.author, ev.emoji)] = ev  # sorted: a later stamp replaces
        elif not original.origin or (ev.origin, ev.author) != (original.origin, original.author):
            refused.append((ev.id, NOT_AUTHOR))
        elif isinstance(ev, Delete):
            deleted = True
        else:
            latest_edit = ev
    if deleted:
        return RowState(original.id, original.author, original.origin, original.channel,
                        original.ts, original.hlc, "", edited=False, deleted=True,
                        refused=tuple(refused))
    text = latest_edit.text if latest_edit is not None else original.text
    return RowState(original.id, original.author, original.origin, original.channel,
                    original.ts, original.hlc, text, edited=latest_edit is not None,
                    reactions=_summarise(reactions.values(), me), refused=tuple(refused),
                    text_id=latest_edit.id if latest_edit is not None else "")


def _summarise(latest: Iterable[Reaction], me: tuple[str, str]) -> tuple[ReactionSummary, ...]:
    first_seen: dict[tuple[str, str], str] = {}  # person -> their earliest live reaction stamp
    live = [r for r in latest if r.on]
    for r in live:
        person = (r.origin, r.author)
        if person not in first_seen or r.hlc < first_seen[person]:
            first_seen[person] = r.hlc
    ranked = sorted(first_seen, key=lambda p: (first_seen[p], p))
    admitted = set(ranked[:MAX_REACTORS_PER_MESSAGE])
    by_emoji: dict[str, list[Reaction]] = {}
    for r in live:
        if (r.origin, r.author) in admitted:
            by_emoji.setdefault(r.emoji, []).append(r)
    out = []
    for emoji, rs in by_emoji.items():
        out.append(ReactionSummary(emoji, len(rs), tuple(sorted(r.author for r in rs)),
                                   any((r.origin, r.author) == me for r in rs)))
    # Most used first; ties in order of the first reaction with that emoji.
    first = {e: min(r.hlc for r in rs) for e, rs in by_emoji.items()}
    out.sort(key=lambda s: (-s.count, first[s.emoji], s.emoji))
    return tuple(out)


def toggle(current: RowState, emoji: str) -> bool:
    """The ``on`` value a tap on ``emoji`` should send: off if I already reacted with it."""
    return not any(s.emoji == emoji and s.mine for s in current.reactions)


# Events whose target is not here yet (catch-up order): bounded per origin and in total, and a
# full buffer refuses newcomers instead of evicting what it holds.
MAX_PENDING_PER_ORIGIN = 256
MAX_PENDING_TOTAL = 4096


class PendingEvents:
    """Events waiting for their original. ``add`` says why it refused; ``take`` hands them over
    when the original arrives (the caller then folds them with ``reduce_row``)."""

    def __init__(self, per_origin: int = MAX_PENDING_PER_ORIGIN,
                 total: int = MAX_PENDING_TOTAL) -> None:
        self._per_origin = per_origin
        self._total = total
        self._by_target: dict[str, dict[str, AnyEvent]] = {}
        self._count: dict[str, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, event: AnyEvent) -> str:
        """"" if kept (or already kept), else the reason it was refused."""
        bucket = self._by_target.setdefault(event.target, {})
        if event.id in bucket:
            return ""
        if self._count.get(event.origin, 0) >= self._per_origin:
            if not bucket:
                del self._by_target[event.target]
            return "too many events waiting for messages not received yet from this peer"
        if self._size >= self._total:
            if not bucket:
                del self._by_target[event.target]
            return "too many events waiting for messages not received yet"
        bucket[event.id] = event
        self._count[event.origin] = self._count.get(event.origin, 0) + 1
        self._size += 1
        return ""

    def take(self, target: str) -> tuple[AnyEvent, ...]:
        bucket = self._by_target.pop(target, {})
        for ev in bucket.values():
            self._count[ev.origin] -= 1
            if not self._count[ev.origin]:
                del self._count[ev.origin]
        self._size -= len(bucket)
        return tuple(bucket.values())
