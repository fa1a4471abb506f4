"""The browser tab's (and window's) title: ``(3) Flet Chat`` while something is unread.

Counts what ``ChatState`` counts (others' messages in channels not open, and in the open one
while the app is in the background); a muted channel counts only its mentions
(``notify.badge_total``). The page is updated only when the title really changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..conversation.notify import ChannelCount, badge_total, tab_title
from .text import APP_TITLE


def title_for(unread: Mapping[str, int], mentions: Mapping[str, int],
              muted: Iterable[str] = ()) -> str:
    counts = {ch: ChannelCount(n, mentions.get(ch, 0)) for ch, n in unread.items() if n}
    return tab_title(badge_total(counts, muted), APP_TITLE)


class TitleKeeper:
    def __init__(self) -> None:
        self.title = APP_TITLE

    def next_title(self, unread: Mapping[str, int], mentions: Mapping[str, int],
                   muted: Iterable[str] = ()) -> str | None:
        """The new title, or None when it stays as it is (no page update needed)."""
        title = title_for(unread, mentions, muted)
        if title == self.title:
            return None
        self.title = title
        return title
