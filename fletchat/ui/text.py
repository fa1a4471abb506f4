"""Words and labels the UI shows (and screen readers and the browser tests read). Pure: no flet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from ..model import KIND_CHAT, Message

APP_TITLE = "Flet Chat"
NAME_LABEL = "Enter your name to join the chat"
MESSAGE_HINT = "Write a message..."
SEARCH_HINT = "Search messages"
SEARCH_HINT_SHORT = "Search"  # on phones, where the field is narrow
LOAD_OLDER = "Load older messages"
STATUS_PENDING = "pending"
STATUS_DELIVERED = "delivered"
STATUS_REFUSED = "refused"  # a peer did not store it, and said why
STATUS_SENT = "sent"  # stored here; nobody else (no other tab, no LAN device) to deliver it to
LATE_LABEL = "arrived late"
NOT_SAVED_LABEL = "not saved on this device"  # its insert failed (disk full) after it went out
PENDING_LABEL = "waiting for a device"  # a LAN device is connected and has not confirmed it
UNVERIFIED_LABEL = "unverified"
OWN_DEVICE_PREFIX = "Your device: "
OWN_DEVICE_TOOLTIP = (
    "This install's key fingerprint. To verify a friend's device, open Flet Chat on both "
    "screens side by side: the fingerprint shown next to their device in your list must match "
    "the \"Your device\" line on their screen, and yours on theirs. If it differs, someone "
    "else may be answering in their name."
)
BLOCK_TOOLTIP = "Block this device"
BLOCKED_TITLE = "Blocked devices"
TRUST_NEW_KEY = "Trust new key"
ROOM_PASSPHRASE = "Room passphrase"
ROOM_LOCK_TOOLTIP = "Private room: make this channel private, or unlock it"
ROOM_OPEN_TOOLTIP = "Private room: unlocked in this page (change the passphrase)"
PRIVATE_LABEL = "private"
MARK_START, MARK_END = "\x02", "\x03"  # search snippets mark matches so (store.MARK_START/END)


def format_time(ts: float) -> str:
    """Short local time for a message row; the date too when it is not today."""
    return _format_time(ts, date.today())


@lru_cache(maxsize=1024)
def _format_time(ts: float, today: date) -> str:
    """Remembered: host mode formats each new message once per open tab (about 4 µs each)."""
    when = datetime.fromtimestamp(ts)
    if when.date() == today:
        return when.strftime("%H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Status:
    """Delivery of a message written on this install: pending, or delivered (at, if known)."""

    state: str
    at: float | None = None
    note: str = ""  # refused: "not accepted by <peer>: <reason>"

    @property
    def label(self) -> str:
        if self.state == STATUS_REFUSED:
            return self.note
        if self.state == STATUS_PENDING:
            return PENDING_LABEL
        if self.state == STATUS_SENT:
            return "sent"
        return f"delivered {format_time(self.at)}" if self.at else "delivered"


def describe_for_screen_reader(
    msg: Message, status: Status | None = None, late: bool = False, unverified: bool = False
) -> str:
    """What assistive tech (and the browser tests) read for a row: who, when, what (and the
    delivery status, the late cue and the "unverified" cue, when there is one)."""
    if msg.kind == KIND_CHAT:
        text = f"{msg.author} at {format_time(msg.ts)}: {msg.text}"
    else:
        text = msg.display_text
    if status is not None:
        text += f", {status.label}"
    if late:
        text += f", {LATE_LABEL}"
    if unverified and msg.kind == KIND_CHAT:
        text += f", {UNVERIFIED_LABEL}"
    return text


def short_fingerprint(fp: str) -> str:
    """The first two groups of a fingerprint ("CTWQ-H5KK"): enough to tell two "Alex" apart at a
    glance (the full one is for comparing in person)."""
    return "-".join(fp.split("-")[:2]) if fp else ""


def identity_warning_text(name: str, old_fp: str, new_fp: str) -> str:
    who = name or "A peer"
    return (
        f"Warning: {who}'s device key changed (was {old_fp}, now {new_fp}). Someone may be "
        "impersonating it. Messages from it are refused until you verify and reset."
    )


def channel_title(channel: str, me: str | None = None) -> str:
    """How a channel is named on screen: "# general", "@ Bob" (the other person of a DM)."""
    if channel.startswith("@") and "+" in channel:
        first, _, second = channel[1:].partition("+")
        other = second if first == me else first if second == me else f"{first}, {second}"
        return f"@ {other}"
    return f"# {channel}"


def channel_label(title: str, unread: int, mentions: int = 0, muted: bool = False) -> str:
    """ "# lunch, 3 unread, 1 mention, muted" (what the tile says to a screen reader)."""
    label = f"{title}, {unread} unread" if unread else title
    if mentions:
        label += f", {mentions} mention" + ("s" if mentions > 1 else "")
    return label + (", muted" if muted else "")


def plain_snippet(snippet: str) -> str:
    return snippet.replace(MARK_START, "").replace(MARK_END, "")


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """A search snippet as (text, is_match) parts, from its MARK_START/MARK_END marks."""
    parts: list[tuple[str, bool]] = []
    rest = snippet
    while rest:
        start = rest.find(MARK_START)
        if start < 0:
            parts.append((rest, False))
            break
        if start:
            parts.append((rest[:start], False))
        end = rest.find(MARK_END, start + 1)
        if end < 0:
            end = len(rest)
        if end > start + 1:
            parts.append((rest[start + 1 : end], True))
        rest = rest[end + 1 :]
    return parts
