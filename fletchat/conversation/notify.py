"""Notification arithmetic over rows, pure: unread and mention counts, the tab title, the
"New messages" line, date separators and grouping of consecutive rows by one person.

A row is anything with the fields below (``model.Message`` fits). Stamps (``hlc``) compare as
strings in the order every peer shows, so "read up to" is a stamp, not an index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .mentions import mentions_me

APP_TITLE = "Flet Chat"
GROUP_WINDOW = 5 * 60.0  # consecutive rows by one person within this many seconds share an avatar
COUNTED_KINDS = ("chat", "reply")


class Row(Protocol):
    id: str
    kind: str
    author: str
    origin: str
    text: str
    ts: float
    channel: str
    hlc: str


@dataclass(frozen=True)
class ChannelCount:
    unread: int = 0
    mentions: int = 0


def _counts(row: Row, me_origin: str) -> bool:
    return row.kind in COUNTED_KINDS and row.origin != me_origin


def unread_counts(rows: Iterable[Row], last_read: Mapping[str, str], me_origin: str,
                  my_name: str) -> dict[str, ChannelCount]:
    """Per channel: rows newer than the channel's last-read stamp not written here, and how many
    of them mention ``my_name``. Channels with nothing unread are absent."""
    unread: dict[str, int] = {}
    ment: dict[str, int] = {}
    for r in rows:
        if _counts(r, me_origin) and r.hlc > last_read.get(r.channel, ""):
            unread[r.channel] = unread.get(r.channel, 0) + 1
            if mentions_me(r.text, my_name):
                ment[r.channel] = ment.get(r.channel, 0) + 1
    return {ch: ChannelCount(n, ment.get(ch, 0)) for ch, n in unread.items()}


def badge_total(counts: Mapping[str, ChannelCount], muted: Iterable[str] = ()) -> int:
    """What the title counts: every unread row, except that a muted channel counts only its
    mentions (and direct messages, channels starting with "@", are never muted here)."""
    mute = {m for m in muted if not m.startswith("@")}
    return sum(c.mentions if ch in mute else c.unread for ch, c in counts.items())


def tab_title(total: int, base: str = APP_TITLE) -> str:
    """``(3) Flet Chat``; ``(99+) Flet Chat`` past 99; the plain title at zero."""
    if total <= 0:
        return base
    return f"({total if total < 100 else '99+'}) {base}"


def should_alert(row: Row, me_origin: str, my_name: str, focused: bool,
                 muted: Iterable[str] = ()) -> bool:
    """An OS notification / banner: mentions and direct messages, only when the app is not
    focused; a muted channel still alerts on a mention of me."""
    if focused or not _counts(row, me_origin):
        return False
    if mentions_me(row.text, my_name):
        return True
    return row.channel.startswith("@") and row.channel not in set(muted)


def unread_line(rows: Sequence[Row], last_read: str, me_origin: str) -> int | None:
    """Index of the row the "New messages" line goes above: the first row after ``last_read``
    not written here; None when there is nothing new (or nothing was ever read: no line)."""
    if not last_read:
        return None
    for i, r in enumerate(rows):
        if r.hlc > last_read and _counts(r, me_origin):
            return i
    return None


def day_label(day: dt.date, today: dt.date) -> str:
    if day == today:
        return "Today"
    if day == today - dt.timedelta(days=1):
        return "Yesterday"
    if day.year == today.year:
        return day.strftime("%A, %d %B").replace(" 0", " ")
    return day.strftime("%d %B %Y").lstrip("0")


def date_separators(rows: Sequence[Row], today: dt.date,
                    tz: dt.tzinfo | None = None) -> dict[int, str]:
    """{row index: label} for each row that starts a new calendar day (in ``tz``, default the
    local zone), the first row included."""
    out: dict[int, str] = {}
    prev: dt.date | None = None
    for i, r in enumerate(rows):
        day = dt.datetime.fromtimestamp(r.ts, tz).date()
        if day != prev:
            out[i] = day_label(day, today)
            prev = day
    return out


def group_starts(rows: Sequence[Row], window: float = GROUP_WINDOW,
                 breaks: Iterable[int] = (), tz: dt.tzinfo | None = None) -> list[bool]:
    """For each row, True if it shows the avatar and name (starts a group). A row continues the
    group above when both are chat rows by the same origin and name, on the same day, at most
    ``window`` seconds apart, and no separator (``breaks``: row indexes with a date or unread
    line above them) lies between."""
    cut = set(breaks)
    out: list[bool] = []
    for i, r in enumerate(rows):
        if i == 0 or i in cut:
            out.append(True)
            continue
        p = rows[i - 1]
        same = (
            r.kind in COUNTED_KINDS and p.kind in COUNTED_KINDS
            and r.origin == p.origin and r.author == p.author
            and 0 <= r.ts - p.ts <= window
            and dt.datetime.fromtimestamp(r.ts, tz).date()
            == dt.datetime.fromtimestamp(p.ts, tz).date()
        )
        out.append(not same)
    return out
