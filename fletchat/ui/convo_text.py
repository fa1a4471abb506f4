"""What a conversation row adds to the tutorial's ChatMessage, as one pure value (``RowDecor``),
and the words it shows and says: the reply quote, "edited", "message deleted", reactions with who,
"seen by N", "on N of M devices", the date and "New messages" lines above a row. Pure (no flet):
the row control (``convo_row``) draws a decor, tests check it without a client."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..conversation.notify import COUNTED_KINDS, Row
from ..conversation.reducer import DELETED_TEXT, ReactionSummary

EDITED_LABEL = "edited"
NEW_MESSAGES = "New messages"
MENTIONS_YOU = "mentions you"
REPLY_PREFIX = "in reply to"
ACTIONS_TOOLTIP = "Message actions"


@dataclass(frozen=True)
class Quote:
    """The message a reply answers: carried by the reply, so it shows without the original."""

    parent_id: str
    author: str
    snippet: str

    @property
    def label(self) -> str:
        return f"{REPLY_PREFIX} {self.author}: {self.snippet}"


@dataclass(frozen=True)
class RowDecor:
    """Everything about a chat row beyond the tutorial's avatar, name, time and text."""

    text: str  # the latest text (an edit's), or the original's
    edited: bool = False
    deleted: bool = False
    quote: Quote | None = None
    reactions: tuple[ReactionSummary, ...] = ()
    grouped: bool = False  # continues the same person's group: no avatar, no name line
    above: tuple[str, ...] = ()  # lines drawn above the row: a date, "New messages"
    mentioned: bool = False  # names the viewer (the row is highlighted for them)
    seen: tuple[str, ...] = ()  # who read it (own rows only)
    reach: tuple[int, int] | None = None  # (devices holding it, devices known); own rows only
    mine: bool = False  # written by this person here: edit and delete are offered

    @property
    def shown_text(self) -> str:
        return DELETED_TEXT if self.deleted else self.text

    @property
    def footer(self) -> str:
        """The small line under one's own message: "seen by 2 · on 3 of 4 devices"."""
        parts = [seen_line(self.seen), reach_text(self.reach)]
        return " \u00b7 ".join(p for p in parts if p)

    def suffix(self) -> str:
        """What the row's screen-reader label adds after "NAME at HH:MM: TEXT" (the date and
        "New messages" lines are drawn, not said: a label keeps starting with who wrote it)."""
        parts: list[str] = []
        if self.quote is not None:
            parts.append(self.quote.label)
        if self.edited and not self.deleted:
            parts.append(EDITED_LABEL)
        if self.mentioned:
            parts.append(MENTIONS_YOU)
        parts.extend(reaction_label(r) for r in self.reactions)
        if self.seen:
            parts.append(f"{seen_line(self.seen)}: {', '.join(self.seen)}")
        if self.reach is not None and reach_text(self.reach):
            parts.append(reach_text(self.reach))
        return "".join(f", {p}" for p in parts)


def reaction_label(r: ReactionSummary) -> str:
    """ "👍 2 (Ada, Bob)": the chip's tooltip and its part of the row's label."""
    return f"{r.emoji} {r.count} ({', '.join(r.who)})"


def seen_line(seen: tuple[str, ...]) -> str:
    return f"seen by {len(seen)}" if seen else ""


def reach_text(reach: tuple[int, int] | None) -> str:
    """ "on 3 of 4 devices"; nothing when no other device is known (a device alone)."""
    if reach is None or reach[1] <= 1:
        return ""
    return f"on {reach[0]} of {reach[1]} devices"


def unread_start(rows: Sequence[Row], count: int, me: Callable[[Row], bool]) -> int | None:
    """Index (in ``rows``, oldest first) of the first of the last ``count`` unread rows (chat
    from others; notices and one's own rows are not counted): where "New messages" goes. None
    when nothing is unread."""
    if count <= 0:
        return None
    seen = 0
    for i in range(len(rows) - 1, -1, -1):
        r = rows[i]
        if r.kind in COUNTED_KINDS and not me(r):
            seen += 1
            if seen == count:
                return i
    return 0 if seen else None
