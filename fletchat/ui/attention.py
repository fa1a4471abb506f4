"""What asks for a person's attention, pure: mention counts per channel, messages that arrive
while the app is in the background, and which messages alert (``Prefs.alerts``, mute).

A host serves many people from one origin, so "written by me" is the session's own rows (origin
and name), never the origin alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..conversation.mentions import mentions_me
from ..conversation.prefs import Alerts, Prefs
from ..model import KIND_CHAT, Message


def wants_alert(msg: Message, me: str, mine: bool, prefs: Prefs, looking: bool) -> bool:
    """An alert (OS notification or banner) for ``msg``: never for one's own or what is being
    looked at; mentions always (a muted channel too), direct messages and, with "every message",
    everything else in channels not muted."""
    if mine or looking or msg.kind != KIND_CHAT or prefs.alerts is Alerts.NONE:
        return False
    if me and mentions_me(msg.text, me):
        return True
    if msg.channel.startswith("@"):
        return True
    return prefs.alerts is Alerts.ALL and msg.channel not in prefs.muted


@dataclass
class Attention:
    """Mentions per channel (unread ones), and unread rows of the open channel while the app is
    in the background (``ChatState.unread`` counts the other channels)."""

    mentions: dict[str, int] = field(default_factory=dict)
    background: int = 0

    def note(self, msg: Message, me: str, mine: bool, shown: bool, focused: bool) -> bool:
        """A live message; True when a count changed."""
        if mine or msg.kind != KIND_CHAT:
            return False
        changed = False
        if shown and not focused:
            self.background += 1
            changed = True
        if (not shown or not focused) and me and mentions_me(msg.text, me):
            self.mentions[msg.channel] = self.mentions.get(msg.channel, 0) + 1
            changed = True
        return changed

    def opened(self, channel: str) -> None:
        self.mentions.pop(channel, None)
        self.background = 0

    def focused(self, channel: str) -> bool:
        """Back in front: the open channel is read. True when a count changed."""
        changed = bool(self.background or self.mentions.get(channel))
        self.opened(channel)
        return changed

    def unread_with_background(self, unread: dict[str, int], channel: str) -> dict[str, int]:
        if not self.background:
            return unread
        return {**unread, channel: unread.get(channel, 0) + self.background}
