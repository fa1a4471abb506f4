"""From what the backend says about a message to the ``RowDecor`` its row draws, and where rows
group, where the date changes and where "New messages" starts (``Layout``).

The layout of a page is computed over the page (``layouts``); a live message only looks at the
newest row shown (``layout_after``), so placing it costs the same whatever the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..conversation.mentions import mentions_me
from ..conversation.notify import GROUP_WINDOW, date_separators, day_label, group_starts
from ..model import KIND_CHAT, Message
from .backend import ChatBackend
from .convo_text import NEW_MESSAGES, Quote, RowDecor, unread_start


@dataclass(frozen=True)
class Layout:
    grouped: bool = False
    above: tuple[str, ...] = ()


def layouts(msgs: Sequence[Message], unread: int, mine: Callable[[Message], bool],
            today: dt.date | None = None) -> list[Layout]:
    """Per message of a page (oldest first): grouped under the row above or not, and the date
    and "New messages" lines above it."""
    today = today or dt.date.today()
    dates = date_separators(msgs, today)
    line = unread_start(msgs, unread, mine)
    breaks = set(dates) | ({line} if line is not None else set())
    starts = group_starts(msgs, breaks=breaks)
    out = []
    for i, _ in enumerate(msgs):
        above = [dates[i]] if i in dates else []
        if i == line:
            above.append(NEW_MESSAGES)
        out.append(Layout(not starts[i], tuple(above)))
    return out


def layout_after(prev: Message | None, msg: Message, today: dt.date | None = None) -> Layout:
    """A live message placed after ``prev`` (the newest row shown, None in an empty list)."""
    today = today or dt.date.today()
    day = dt.datetime.fromtimestamp(msg.ts).date()
    if prev is None or dt.datetime.fromtimestamp(prev.ts).date() != day:
        return Layout(False, (day_label(day, today),))
    same = (msg.kind == KIND_CHAT and prev.kind == KIND_CHAT and msg.origin == prev.origin
            and msg.author == prev.author and 0 <= msg.ts - prev.ts <= GROUP_WINDOW)
    return Layout(same)


class Dresser:
    """Builds a row's ``RowDecor`` from the backend (row state, seen-by, reach)."""

    def __init__(self, backend: ChatBackend, me: Callable[[], str | None]) -> None:
        self.backend = backend
        self.me = me

    def mine(self, msg: Message) -> bool:
        return self.backend.is_own(msg) and msg.author == self.me()

    def decor(self, msg: Message, layout: Layout = Layout(), shown_text: str | None = None,
              live: bool = False) -> RowDecor:
        """``shown_text``: a private room's opened text (its stored text is sealed).
        ``live``: a message that just arrived, whose state is the message itself (no events
        yet, nobody has read it) unless it is a reply: no backend lookups."""
        me = self.me() or ""
        mine = self.mine(msg)
        if msg.kind != KIND_CHAT:
            return RowDecor(msg.display_text, above=layout.above)
        state = self.backend.row_state(msg)
        text = shown_text if shown_text is not None else state.text
        quote = None
        if state.reply is not None:
            r = state.reply
            quote = Quote(r.parent_id, r.parent_author, r.snippet)
        seen: tuple[str, ...] = ()
        reach = None
        if mine and not live and not state.deleted:
            seen = tuple(sorted(self.backend.seen_by(msg)))
            reach = self.backend.reach(msg)
        return RowDecor(
            text=text, edited=state.edited, deleted=state.deleted, quote=quote,
            reactions=state.reactions, grouped=layout.grouped, above=layout.above,
            mentioned=bool(me) and not mine and mentions_me(text, me),
            seen=seen, reach=reach, mine=mine,
        )
