"""What the hub will publish for the conversation features (to the UI, the relay and the
headless peer), pure like ``fletchat.events``; to be merged into it when wired."""

from __future__ import annotations

from dataclasses import dataclass

from .reducer import RowState


@dataclass(frozen=True)
class RowChanged:
    """A message's row changed (edited, deleted, reacted to): redraw that one row only."""

    row: RowState


@dataclass(frozen=True)
class TypingChanged:
    channel: str
    names: tuple[str, ...]  # who is typing now, earliest first (``signals.typing_line`` words it)


@dataclass(frozen=True)
class SeenChanged:
    """Read positions moved in ``channel``: "seen by N" under the viewer's own rows may change."""

    channel: str


@dataclass(frozen=True)
class ConversationRefused:
    """An event written here was refused (by this hub or a peer), with the sentence to show."""

    event_id: str
    reason: str


ConversationEvent = RowChanged | TypingChanged | SeenChanged | ConversationRefused
