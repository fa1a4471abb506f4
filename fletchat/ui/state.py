"""What belongs to one person's screen, and nothing else: the open channel, unread counts, the
direct messages opened here, and whether the list follows new messages. Pure (no flet), so it is
tested without a client; the hub keeps everything else."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..model import DEFAULT_CHANNEL, KIND_CHAT, Message

FOLLOW_SLACK_PX = 40  # this close to the end counts as "at the end"


def channel_order(channel: str) -> tuple[bool, bool, str]:
    """#general first, then channels, then direct messages, each by name."""
    return (channel != DEFAULT_CHANNEL, channel.startswith("@"), channel)


@dataclass
class ChatState:
    channel: str = DEFAULT_CHANNEL
    unread: dict[str, int] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)  # DMs opened here before anyone wrote
    following: bool = True  # the list sticks to the newest message

    def open(self, channel: str) -> None:
        """Make ``channel`` current: its unread count is cleared, the list follows again."""
        self.channel = channel
        self.unread.pop(channel, None)
        self.following = True

    def open_direct(self, channel: str) -> None:
        self.opened.add(channel)
        self.open(channel)

    def on_message(self, msg: Message, mine: bool, visible: bool) -> bool:
        """A live message: True when it belongs on screen now; else counted as unread (chat
        from others in channels this person can see)."""
        if msg.channel == self.channel:
            return True
        if msg.kind == KIND_CHAT and not mine and visible:
            self.unread[msg.channel] = self.unread.get(msg.channel, 0) + 1
        return False

    @property
    def total_unread(self) -> int:
        return sum(self.unread.values())

    def visible_channels(self, known: Iterable[str], can_see: Callable[[str], bool]) -> list[str]:
        """Known channels plus DMs opened here and the current one, those this person may see."""
        names = dict.fromkeys([*known, *sorted(self.opened), self.channel])
        return sorted((c for c in names if can_see(c)), key=channel_order)

    def on_scroll(self, from_end: float) -> bool:
        """The reader scrolled (``from_end``: pixels away from the newest message): following
        while at the end. True when following changed."""
        at_end = from_end <= FOLLOW_SLACK_PX
        changed = at_end != self.following
        self.following = at_end
        return changed

    def stop_following(self) -> None:
        """Older pages or a search jump: the reader looks back, the list must not run off."""
        self.following = False

    def follow(self) -> None:
        """One's own message, or a channel opened: back to the newest."""
        self.following = True
