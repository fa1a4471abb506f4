"""What the UI port (``ui/backend.py``) says about the conversation features: the row state and
the events ``subscribe`` handlers get. Pure (no flet), shared by the hub, the relay and the UI.

``RowState`` is the reducer's (``reducer.RowState``): latest text, edited, deleted, reactions with
who, and the reply it answers (``reply``: the parent's id, author and a one-line quote).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kinds import ReplyRef
from .reducer import DELETED_TEXT, ReactionSummary, RowState

if TYPE_CHECKING:
    from ..model import Message

__all__ = [
    "DELETED_TEXT", "ConversationEvent", "ConversationRefused", "ReactionSummary", "ReadChanged",
    "ReplyRef", "RowChanged", "RowState", "TypingChanged",
]


@dataclass(frozen=True)
class RowChanged:
    """A message's row changed (edited, deleted, reacted to, seen further): redraw that one row
    (``backend.row_state(msg)`` gives what to show; ``row`` is it when the backend had it)."""

    message_id: str
    channel: str = ""
    row: RowState | None = None
    cause: Message | None = None  # the reaction, edit or delete that changed it (if any)


@dataclass(frozen=True)
class TypingChanged:
    """Who is typing in ``channel`` now, earliest first (``signals.typing_line`` words it)."""

    channel: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class ReadChanged:
    """Read positions moved in ``channel``: "seen by N" under the viewer's own rows may change."""

    channel: str
    name: str = ""  # who read (the mark that moved)
    upto: str = ""  # the clock stamp they have read up to


@dataclass(frozen=True)
class ConversationRefused:
    """An event written here (reaction, edit, delete) was refused by a peer, with its reason."""

    event_id: str
    target: str
    reason: str


@dataclass(frozen=True)
class NameChanged:
    """Someone changed their display name (shown as a notice)."""

    origin: str
    old: str
    new: str


ConversationEvent = RowChanged | TypingChanged | ReadChanged | ConversationRefused | NameChanged
