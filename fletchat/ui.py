"""The tutorial's chat UI, grown up: login dialog, ChatMessage rows, composer, who-is-online panel,
channels with unread counts, older pages of history, search, delivery ticks.

Views hold controls, not state: everything they show comes from the hub through a ``HubSession``
(messages, roster, channel and delivery changes arrive as pubsub events on the page's loop). The
only state a view keeps is what belongs to one person's screen: the current channel, unread
counts, and which messages it is showing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import flet as ft

from .hub import PUBSUB_TOPIC, HubSession, Online, RosterChanged
from .model import (
    DEFAULT_CHANNEL,
    KIND_CHAT,
    MAX_NAME_CHARS,
    Message,
    ValidationError,
    avatar_color,
    initials,
)

try:  # the static web client ships these modules without the hub's extras
    from .hub import ChannelsChanged, Delivered
except ImportError:  # pragma: no cover
    ChannelsChanged = Delivered = None  # type: ignore[assignment,misc]

try:
    from .hub import IdentityWarning
except ImportError:  # pragma: no cover
    IdentityWarning = None  # type: ignore[assignment,misc]

try:  # a peer refused our message / the history cannot be written (issue 11)
    from .events import MessageRefused, StoreFailed
except ImportError:  # pragma: no cover
    MessageRefused = StoreFailed = None  # type: ignore[assignment,misc]

try:
    from .store import MARK_END, MARK_START
except ImportError:  # pragma: no cover - no sqlite3 (Pyodide)
    MARK_START, MARK_END = "\x02", "\x03"

try:  # private rooms (cryptography is imported lazily by rooms.py itself)
    from .rooms import SEALED_PREFIX
except ImportError:  # pragma: no cover
    SEALED_PREFIX = "sealed:v1:"

log = logging.getLogger("fletchat.ui")

APP_TITLE = "Flet Chat"
NAME_LABEL = "Enter your name to join the chat"
MESSAGE_HINT = "Write a message..."
SEARCH_HINT = "Search messages"
LOAD_OLDER = "Load older messages"
NARROW_WIDTH = 640
PAGE = 50  # messages per history page
JUMP_PAGES = 40  # how far back a search result may be fetched (pages)
HIGHLIGHT_SECONDS = 2.5

STATUS_PENDING = "pending"
STATUS_DELIVERED = "delivered"
STATUS_REFUSED = "refused"
LATE_LABEL = "arrived late"
PENDING_LABEL = "not delivered yet"
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
PRIVATE_LABEL = "private"


def format_time(ts: float) -> str:
    """Short local time for a message row; the date too when it is not today."""
    when = datetime.fromtimestamp(ts)
    if when.date() == datetime.now().date():
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


def highlight_spans(snippet: str) -> list[ft.TextSpan]:
    """A search snippet with MARK_START/MARK_END around matches, as spans (matches in bold)."""
    spans: list[ft.TextSpan] = []
    rest = snippet
    bold = ft.TextStyle(weight=ft.FontWeight.BOLD, bgcolor=ft.Colors.AMBER_100)
    while rest:
        start = rest.find(MARK_START)
        if start < 0:
            spans.append(ft.TextSpan(rest))
            break
        if start:
            spans.append(ft.TextSpan(rest[:start]))
        end = rest.find(MARK_END, start + 1)
        if end < 0:
            end = len(rest)
        if end > start + 1:
            spans.append(ft.TextSpan(rest[start + 1 : end], style=bold))
        rest = rest[end + 1 :]
    return spans


def plain_snippet(snippet: str) -> str:
    return snippet.replace(MARK_START, "").replace(MARK_END, "")


def status_control(status: Status | None) -> ft.Control:
    """The little delivery mark beside the time: a clock while pending, a tick when delivered."""
    if status is None:
        return ft.Row(visible=False)
    pending = status.state == STATUS_PENDING
    refused = status.state == STATUS_REFUSED
    return ft.Row(
        [
            ft.Icon(
                ft.Icons.ERROR_OUTLINE if refused else ft.Icons.SCHEDULE if pending
                else ft.Icons.DONE,
                size=13,
                color=ft.Colors.RED_700 if refused else ft.Colors.GREY_500 if pending
                else ft.Colors.GREEN_700,
            ),
            ft.Text(status.label, size=10, color=ft.Colors.GREY_600),
        ],
        spacing=2,
        tight=True,
    )


def unverified_chip() -> ft.Control:
    return ft.Container(
        content=ft.Text(UNVERIFIED_LABEL, size=10, color=ft.Colors.GREY_800),
        bgcolor=ft.Colors.GREY_200,
        border_radius=8,
        padding=ft.Padding.symmetric(horizontal=6, vertical=1),
        tooltip=(
            "Relayed from a device this one has never met: its signature could not be checked, "
            "so it may not be from who it says."
        ),
    )


def room_chip(state: str) -> ft.Control:
    """Beside a message of a private room: opened with the room key, or not readable here."""
    opened = state == "open"
    return ft.Container(
        content=ft.Row(
            [
                ft.Icon(ft.Icons.LOCK if opened else ft.Icons.LOCK_OUTLINE, size=11,
                        color=ft.Colors.GREEN_800 if opened else ft.Colors.RED_800),
                ft.Text(PRIVATE_LABEL if opened else "sealed", size=10,
                        color=ft.Colors.GREEN_800 if opened else ft.Colors.RED_800),
            ],
            spacing=2,
            tight=True,
        ),
        bgcolor=ft.Colors.GREEN_50 if opened else ft.Colors.RED_50,
        border_radius=8,
        padding=ft.Padding.symmetric(horizontal=6, vertical=1),
        tooltip=(
            "Sealed end to end with the room passphrase; opened here."
            if opened
            else "Sealed with a room passphrase this session does not have (or a forgery)."
        ),
    )


def late_chip() -> ft.Control:
    return ft.Container(
        content=ft.Text(LATE_LABEL, size=10, color=ft.Colors.BROWN_700),
        bgcolor=ft.Colors.AMBER_100,
        border_radius=8,
        padding=ft.Padding.symmetric(horizontal=6, vertical=1),
        tooltip="This message was written earlier and reached this device only now.",
    )


class ChatMessage(ft.Row):
    """The tutorial's message row: initials avatar (stable colour), bold name, time, the text;
    a delivery mark for messages written here and an "arrived late" chip for late catch-ups."""

    def __init__(
        self,
        message: Message,
        status: Status | None = None,
        late: bool = False,
        unverified: bool = False,
        room: str = "",
    ) -> None:
        super().__init__()
        self.message = message
        self.vertical_alignment = ft.CrossAxisAlignment.START
        self.status_slot = ft.Container(content=status_control(status))
        header: list[ft.Control] = [
            ft.Text(message.author, weight=ft.FontWeight.BOLD),
            ft.Text(format_time(message.ts), size=11, color=ft.Colors.GREY_600),
            self.status_slot,
        ]
        if late:
            header.append(late_chip())
        if unverified:
            header.append(unverified_chip())
        if room in ("open", "no_key", "refused"):
            header.append(room_chip(room))
        self.body = ft.Container(
            content=ft.Column(
                [
                    ft.Row(header, spacing=8, vertical_alignment=ft.CrossAxisAlignment.CENTER),
                    ft.Text(
                        message.text,
                        selectable=True,
                        italic=room in ("no_key", "refused"),
                        color=ft.Colors.GREY_600 if room in ("no_key", "refused") else None,
                    ),
                ],
                tight=True,
                spacing=5,
            ),
            expand=True,
            border_radius=6,
            padding=ft.Padding.symmetric(horizontal=4, vertical=2),
            animate=300,
        )
        self.controls = [
            ft.CircleAvatar(
                content=ft.Text(initials(message.author)),
                color=ft.Colors.WHITE,
                bgcolor=avatar_color(message.author),
            ),
            self.body,
        ]

    def set_status(self, status: Status | None) -> None:
        self.status_slot.content = status_control(status)

    def set_highlight(self, on: bool) -> None:
        self.body.bgcolor = ft.Colors.AMBER_100 if on else None


class MessageRow(ft.Semantics):
    """One entry of the conversation list: a ChatMessage (or a notice line) in Semantics, because
    selectable Text is invisible to screen readers. Keyed by message id for ``scroll_to``."""

    def __init__(
        self,
        msg: Message,
        status: Status | None = None,
        late: bool = False,
        unverified: bool = False,
        room: str = "",
    ) -> None:
        unverified = unverified and msg.kind == KIND_CHAT
        if msg.kind == KIND_CHAT:
            row: ft.Control = ChatMessage(msg, status, late, unverified, room)
        else:
            notice = msg.display_text + (f" ({LATE_LABEL})" if late else "")
            row = ft.Text(notice, italic=True, color=ft.Colors.BLACK_45, size=12)
        super().__init__(
            content=row,
            label=describe_for_screen_reader(msg, status, late, unverified),
            container=True,
            exclude_semantics=True,
            data=msg.id,
            key=ft.ScrollKey(msg.id),  # for scroll_to(scroll_key=...)
        )
        self.message = msg
        self.status = status
        self.late = late
        self.unverified = unverified
        self.room = room

    @property
    def row(self) -> ft.Control:
        return self.content

    def set_status(self, status: Status | None) -> None:
        self.status = status
        self.label = describe_for_screen_reader(self.message, status, self.late, self.unverified)
        if isinstance(self.row, ChatMessage):
            self.row.set_status(status)

    def set_highlight(self, on: bool) -> None:
        if isinstance(self.row, ChatMessage):
            self.row.set_highlight(on)
        elif isinstance(self.row, ft.Text):
            self.row.bgcolor = ft.Colors.AMBER_100 if on else None


def message_control(
    msg: Message,
    status: Status | None = None,
    late: bool = False,
    unverified: bool = False,
    room: str = "",
) -> MessageRow:
    """A row for the list (see ``MessageRow``); ``room`` is how a private room's message was
    opened ("open", "no_key", "refused"; "" otherwise), its text already the one to show."""
    return MessageRow(msg, status, late, unverified, room)


def online_tile(
    person: Online, now: float | None = None, on_click: Callable | None = None
) -> ft.Control:
    """One line of the peer list: avatar, name, device kind and how long online."""
    minutes = int(((now or time.time()) - person.since) // 60)
    duration = "just now" if minutes < 1 else f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
    where = "here" if person.local else "LAN"
    detail = f"{person.device} · {where} · {duration}"
    return ft.Semantics(
        label=f"{person.name} online, {detail}",
        container=True,
        button=on_click is not None or None,
        on_tap=on_click,
        tooltip=f"Message {person.name} directly" if on_click else None,
        content=ft.Container(
            on_click=on_click,
            border_radius=5,
            content=ft.Row(
                [
                    ft.CircleAvatar(
                        content=ft.Text(initials(person.name), size=11),
                        color=ft.Colors.WHITE,
                        bgcolor=avatar_color(person.name),
                        radius=14,
                    ),
                    ft.Column(
                        [
                            ft.Text(person.name, weight=ft.FontWeight.W_500, size=13),
                            ft.Text(detail, size=11, color=ft.Colors.GREY_600),
                        ],
                        spacing=0,
                        tight=True,
                    ),
                ],
                spacing=8,
            ),
        ),
    )


def own_fingerprint_line(fingerprint: str) -> ft.Control:
    """"Your device: XXXX-XXXX-XXXX-XXXX": selectable, with a tooltip on how to compare it.
    Wrapped in Semantics because selectable Text is invisible to screen readers."""
    line = f"{OWN_DEVICE_PREFIX}{fingerprint}"
    return ft.Semantics(
        label=line,
        container=True,
        exclude_semantics=True,
        content=ft.Container(
            tooltip=OWN_DEVICE_TOOLTIP,
            # Two lines so the whole fingerprint fits the panel (people compare every group).
            content=ft.Column(
                [
                    ft.Row(
                        [
                            ft.Icon(ft.Icons.FINGERPRINT, size=14, color=ft.Colors.GREY_700),
                            ft.Text(OWN_DEVICE_PREFIX.rstrip(": ") + ":", size=11,
                                    color=ft.Colors.GREY_800),
                        ],
                        spacing=4,
                        tight=True,
                    ),
                    ft.Text(fingerprint, size=12, selectable=True, font_family="monospace",
                            weight=ft.FontWeight.W_500, color=ft.Colors.GREY_900),
                ],
                spacing=2,
                tight=True,
            ),
        ),
    )


def device_label(device: Online) -> str:
    short = short_fingerprint(device.fingerprint)
    key = f", key {short}" if short else ""
    return f"{device.name} ({device.device}) on the LAN{key}"


def device_tile(device: Online, on_block: Callable | None = None) -> ft.Control:
    """One LAN device: name, kind, the short fingerprint (two "Alex" are told apart) and, when
    the hub can block, a block button."""
    short = short_fingerprint(device.fingerprint)
    line = f"{device.name} ({device.device})" + (f" · {short}" if short else "")
    controls: list[ft.Control] = [
        ft.Semantics(
            label=device_label(device),
            container=True,
            exclude_semantics=True,
            expand=True,
            content=ft.Text(
                line,
                size=11,
                color=ft.Colors.GREY_700,
                tooltip=f"Key fingerprint {device.fingerprint}" if device.fingerprint else None,
            ),
        )
    ]
    if on_block is not None:
        controls.append(
            ft.IconButton(
                icon=ft.Icons.BLOCK,
                icon_size=16,
                tooltip=BLOCK_TOOLTIP,
                on_click=on_block,
                data=device.key,
            )
        )
    return ft.Row(controls, spacing=2, vertical_alignment=ft.CrossAxisAlignment.CENTER, data=device.key)


def blocked_tile(peer_id: str, name: str, on_unblock: Callable) -> ft.Control:
    who = name or peer_id
    return ft.Row(
        [
            ft.Text(who, size=11, expand=True, color=ft.Colors.GREY_700, tooltip=peer_id),
            ft.TextButton("Unblock", on_click=on_unblock, data=peer_id),
        ],
        spacing=2,
        data=peer_id,
    )


def identity_banner(warning, on_trust: Callable) -> ft.Control:
    """The loud, persistent red banner for an ``IdentityWarning`` (stays until "Trust new key")."""
    text = identity_warning_text(
        warning.name, warning.old_fingerprint, warning.new_fingerprint
    )
    return ft.Container(
        data=warning.peer_id,
        bgcolor=ft.Colors.RED_900,
        padding=10,
        border_radius=5,
        content=ft.Row(
            [
                ft.Icon(ft.Icons.GPP_BAD, color=ft.Colors.WHITE),
                ft.Semantics(
                    label=text,
                    container=True,
                    exclude_semantics=True,
                    expand=True,
                    content=ft.Text(text, color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
                ),
                ft.Button(
                    TRUST_NEW_KEY,
                    on_click=on_trust,
                    data=warning.peer_id,
                    tooltip=(
                        "Only after comparing the new fingerprint with the one on their screen, "
                        "in person."
                    ),
                ),
            ],
            vertical_alignment=ft.CrossAxisAlignment.CENTER,
        ),
    )


def channel_label(title: str, unread: int) -> str:
    return f"{title}, {unread} unread" if unread else title


def channel_tile(title: str, unread: int, selected: bool, on_click: Callable) -> ft.Control:
    """One entry of the channel list: name, unread count badge, the current one highlighted."""
    badge = ft.Container(
        content=ft.Text(str(unread), size=11, color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
        bgcolor=ft.Colors.RED_600,
        border_radius=10,
        padding=ft.Padding.symmetric(horizontal=7, vertical=1),
        visible=unread > 0,
    )
    return ft.Semantics(
        label=channel_label(title, unread),
        button=True,
        selected=selected,
        container=True,
        exclude_semantics=True,
        on_tap=on_click,
        content=ft.Container(
            content=ft.Row(
                [
                    ft.Text(
                        title,
                        size=14,
                        weight=ft.FontWeight.BOLD if selected or unread else ft.FontWeight.NORMAL,
                        expand=True,
                        no_wrap=True,
                        overflow=ft.TextOverflow.ELLIPSIS,
                    ),
                    badge,
                ],
                spacing=4,
            ),
            bgcolor=ft.Colors.BLUE_100 if selected else None,
            border_radius=5,
            padding=ft.Padding.symmetric(horizontal=8, vertical=6),
            on_click=on_click,
        ),
    )


class ChatView:
    """Builds one session's page and keeps it in step with the hub."""

    def __init__(self, page: ft.Page, session: HubSession, prefill_name: str = "") -> None:
        self.page = page
        self.session = session
        hub = session.hub
        # The static web client's stand-in hub only knows history(), online() and lan_peers().
        self.full = hasattr(hub, "channels") and hasattr(hub, "search")
        self.channel = DEFAULT_CHANNEL
        self.unread: dict[str, int] = {}
        self.opened: set[str] = set()  # DMs opened here before anyone wrote in them
        self.rows: dict[str, MessageRow] = {}
        self.has_older = False
        self.loading_older = False
        self.following = True

        self.chat = ft.ListView(
            expand=True,
            spacing=10,
            auto_scroll=False,  # we follow the end ourselves: scroll_to needs it off
            build_controls_on_demand=False,  # scroll_to(scroll_key=...) needs every row built
            on_scroll=self.on_scroll,
            scroll_interval=150,
        )
        self.load_older_button = ft.TextButton(
            LOAD_OLDER, icon=ft.Icons.HISTORY, on_click=self.load_older_click, visible=False
        )
        self.new_message = ft.TextField(
            hint_text=MESSAGE_HINT,
            autofocus=True,
            shift_enter=True,
            min_lines=1,
            max_lines=5,
            filled=True,
            expand=True,
            on_submit=self.send_click,
        )
        self.send_button = ft.IconButton(
            icon=ft.Icons.SEND_ROUNDED, tooltip="Send message", on_click=self.send_click
        )
        self.title = ft.Text(
            channel_title(DEFAULT_CHANNEL), size=18, weight=ft.FontWeight.BOLD, expand=True
        )
        self.search_field = ft.TextField(
            hint_text=SEARCH_HINT,
            prefix_icon=ft.Icons.SEARCH,
            dense=True,
            width=260,
            on_submit=self.search_submit,
            visible=self.full,
        )
        self.room_button = ft.IconButton(
            icon=ft.Icons.LOCK_OUTLINE,
            tooltip=ROOM_PASSPHRASE,
            on_click=self.room_click,
            visible=self.full and callable(getattr(session, "set_room_passphrase", None)),
        )
        self.room_passphrase = ft.TextField(
            label="Passphrase",
            password=True,
            can_reveal_password=True,
            autofocus=True,
            on_submit=self.room_submit,
        )
        self.channel_menu = ft.PopupMenuButton(
            icon=ft.Icons.MENU, tooltip="Channels", items=[], visible=False
        )
        self.banner_text = ft.Text("", color=ft.Colors.WHITE)
        self.banner = ft.Container(
            content=ft.Row([ft.Icon(ft.Icons.WARNING_AMBER, color=ft.Colors.WHITE), self.banner_text]),
            bgcolor=ft.Colors.RED_700,
            padding=10,
            border_radius=5,
            visible=False,
        )
        self.channel_list = ft.Column(spacing=2, scroll=ft.ScrollMode.AUTO, expand=True)
        self.channels_panel = ft.Container(
            content=ft.Column(
                [
                    ft.Row(
                        [
                            ft.Text("Channels", weight=ft.FontWeight.BOLD, expand=True),
                            ft.IconButton(
                                icon=ft.Icons.ADD,
                                tooltip="New channel",
                                icon_size=18,
                                on_click=self.new_channel_click,
                            ),
                        ]
                    ),
                    self.channel_list,
                ],
                spacing=4,
                expand=True,
            ),
            width=190,
            padding=8,
            border=ft.Border.all(1, ft.Colors.OUTLINE),
            border_radius=5,
            visible=self.full,
        )
        self.people = ft.Column(spacing=8, scroll=ft.ScrollMode.AUTO, expand=True)
        self.people_title = ft.Text("Online", weight=ft.FontWeight.BOLD)
        self.devices_line = ft.Text("", size=11, color=ft.Colors.GREY_600)
        fingerprint = getattr(hub, "fingerprint", "") or ""
        self.own_fingerprint = (
            own_fingerprint_line(fingerprint) if fingerprint else ft.Row(visible=False)
        )
        self.can_block = callable(getattr(hub, "block", None))
        self.devices = ft.Column(spacing=0, tight=True)
        self.blocked_title = ft.Text(BLOCKED_TITLE, weight=ft.FontWeight.BOLD, size=12)
        self.blocked_list = ft.Column(spacing=0, tight=True)
        self.blocked_panel = ft.Column(
            [self.blocked_title, self.blocked_list], spacing=2, tight=True, visible=False
        )
        self.identity_banners = ft.Column(spacing=4, tight=True)
        self.warnings_shown: set[tuple[str, str]] = set()
        self.people_panel = ft.Container(
            content=ft.Column(
                [
                    self.own_fingerprint,
                    self.people_title,
                    self.devices_line,
                    self.devices,
                    self.people,
                    self.blocked_panel,
                ],
                spacing=8,
                expand=True,
            ),
            width=220,
            padding=10,
            border=ft.Border.all(1, ft.Colors.OUTLINE),
            border_radius=5,
        )
        self.join_name = ft.TextField(
            label=NAME_LABEL,
            autofocus=True,
            value=prefill_name,
            max_length=MAX_NAME_CHARS,
            on_submit=self.join_click,
        )
        self.login = ft.AlertDialog(
            modal=True,
            title=ft.Text("Welcome!"),
            content=ft.Column([self.join_name], width=300, height=90, tight=True),
            actions=[ft.Button("Join chat", on_click=self.join_click)],
            actions_alignment=ft.MainAxisAlignment.END,
        )
        self.channel_name = ft.TextField(
            label="Channel name", prefix="#", autofocus=True, on_submit=self.create_channel_click
        )

    @property
    def hub(self):
        return self.session.hub

    # ---- building ----
    def mount(self) -> None:
        page = self.page
        page.title = APP_TITLE
        page.horizontal_alignment = ft.CrossAxisAlignment.STRETCH
        problems = [
            p
            for p in (getattr(self.hub, "store_error", ""), getattr(self.hub, "lan_warning", ""))
            if p
        ]
        if problems:
            self.banner_text.value = "\n".join(problems)
            self.banner.visible = True
        identity_warnings = getattr(self.hub, "identity_warnings", None)
        for warning in identity_warnings() if callable(identity_warnings) else ():
            self.show_identity_warning(warning)
        self.render_blocked()
        page.add(
            self.banner,
            self.identity_banners,
            ft.Row(
                [self.channel_menu, self.title, self.room_button, self.search_field],
                vertical_alignment=ft.CrossAxisAlignment.CENTER,
            ),
            ft.Row(
                [
                    self.channels_panel,
                    ft.Container(
                        content=ft.Column(
                            [
                                ft.Row(
                                    [self.load_older_button],
                                    alignment=ft.MainAxisAlignment.CENTER,
                                ),
                                self.chat,
                            ],
                            spacing=0,
                            expand=True,
                        ),
                        border=ft.Border.all(1, ft.Colors.OUTLINE),
                        border_radius=5,
                        padding=10,
                        expand=True,
                    ),
                    self.people_panel,
                ],
                expand=True,
                vertical_alignment=ft.CrossAxisAlignment.STRETCH,
            ),
            ft.Row([self.new_message, self.send_button]),
        )
        self.show_channel(self.channel)
        self.render_people(self.hub.online(), self.hub.lan_peers())
        page.on_resize = self.on_resize
        self.fit_width(page.width)
        page.pubsub.subscribe_topic(PUBSUB_TOPIC, self.on_event)
        page.show_dialog(self.login)
        page.update()

    def fit_width(self, width: float | None) -> None:
        """Phones get the whole width for the conversation: the peer list shows from 640 px,
        the channel column too (below that, channels are in the header's menu)."""
        wide = width is None or width >= NARROW_WIDTH
        self.people_panel.visible = wide
        self.channels_panel.visible = self.full and wide
        self.channel_menu.visible = self.full and not wide
        self.search_field.width = 260 if wide else 150

    def on_resize(self, e: ft.Event) -> None:
        self.fit_width(self.page.width)
        self.page.update()

    # ---- what the list shows ----
    def status_for(self, msg: Message, pending: set[str] | None = None) -> Status | None:
        """Delivery status of a chat message written on this install (None for the others, and
        when the hub keeps no outbox)."""
        hub = self.hub
        if (
            msg.kind != KIND_CHAT
            or getattr(hub, "store", None) is None
            or msg.origin != getattr(hub, "peer_id", None)
        ):
            return None
        if pending is None:
            pending = hub.pending_ids()
        return Status(STATUS_PENDING) if msg.id in pending else Status(STATUS_DELIVERED)

    def fetch(self, before: str = "") -> list[Message]:
        if not self.full:
            return [] if before else list(self.hub.history())
        return self.hub.history(self.channel, PAGE, before=before)

    def show_channel(self, channel: str) -> None:
        """Make ``channel`` current: its latest page of history, its unread count cleared."""
        self.channel = channel
        self.unread.pop(channel, None)
        self.title.value = channel_title(channel, self.session.name)
        room_keys = getattr(self.session, "room_keys", {})
        self.room_button.icon = ft.Icons.LOCK if channel in room_keys else ft.Icons.LOCK_OUTLINE
        msgs = self.fetch()
        pending = self.hub.pending_ids() if self.full and getattr(self.hub, "store", None) else set()
        self.rows = {}
        self.chat.controls = []
        for msg in sorted(msgs, key=lambda m: (not m.hlc, m.hlc)):
            self._add_row(len(self.chat.controls), msg, self.status_for(msg, pending))
        self.has_older = self.full and len(msgs) >= PAGE
        self.load_older_button.visible = self.has_older
        self.following = True
        self.render_channels()

    def is_unverified(self, msg: Message) -> bool:
        """A chat message from another install whose signature could not be checked. Only hubs
        with an identity say so (without one nothing is checked, and the static client's mirror
        hub has no ``message_status``)."""
        hub = self.hub
        check = getattr(hub, "message_status", None)
        if (
            msg.kind != KIND_CHAT
            or not callable(check)
            or getattr(hub, "trust", None) is None
            or msg.origin == getattr(hub, "peer_id", None)
        ):
            return False
        return check(msg) == UNVERIFIED_LABEL

    def reveal(self, msg: Message) -> tuple[Message, str]:
        """A private room's message as this session can show it: opened with its room key, or
        a placeholder ("sealed (no key)", "sealed: refused ..."); others as they are."""
        if msg.kind != KIND_CHAT or not msg.text.startswith(SEALED_PREFIX):
            return msg, ""
        reveal = getattr(self.session, "reveal", None)
        if not callable(reveal):
            return replace(msg, text="sealed (no key)"), "no_key"
        text, state = reveal(msg)
        return replace(msg, text=text), state

    def _add_row(self, index: int, msg: Message, status: Status | None, late: bool = False) -> MessageRow:
        shown, room = self.reveal(msg)
        row = message_control(shown, status, late, self.is_unverified(msg), room)
        self.rows[msg.id] = row
        self.chat.controls.insert(index, row)
        return row

    def newest_hlc(self) -> str:
        for row in reversed(self.chat.controls):
            if isinstance(row, MessageRow) and row.message.hlc:
                return row.message.hlc
        return ""

    def place(self, msg: Message) -> bool:
        """A live message of the current channel: at the end, or, when its clock stamp is older
        than the newest one shown (a late catch-up), at its place in the order, marked late."""
        if msg.id in self.rows:
            return False
        controls = self.chat.controls
        status = self.status_for(msg)
        newest = self.newest_hlc()
        if not msg.hlc or not newest or msg.hlc >= newest:
            self._add_row(len(controls), msg, status)
            return True
        index = 0
        for i in range(len(controls) - 1, -1, -1):
            other = controls[i]
            if isinstance(other, MessageRow) and other.message.hlc and other.message.hlc <= msg.hlc:
                index = i + 1
                break
        self._add_row(index, msg, status, late=True)
        return False

    def visible_channels(self) -> list[str]:
        """#general first, then channels, then the direct messages this person is part of."""
        names = list(self.hub.channels()) if self.full else [DEFAULT_CHANNEL]
        for extra in (*self.opened, self.channel):
            if extra not in names:
                names.append(extra)
        seen = [c for c in names if self.session.can_see(c)]
        return sorted(
            dict.fromkeys(seen),
            key=lambda c: (c != DEFAULT_CHANNEL, c.startswith("@"), c),
        )

    def render_channels(self) -> None:
        if not self.full:
            return
        tiles = []
        items = []
        for channel in self.visible_channels():
            title = channel_title(channel, self.session.name)
            unread = self.unread.get(channel, 0)
            tiles.append(
                channel_tile(title, unread, channel == self.channel, self._switcher(channel))
            )
            items.append(
                ft.PopupMenuItem(
                    content=channel_label(title, unread),
                    checked=channel == self.channel,
                    on_click=self._switcher(channel),
                )
            )
        self.channel_list.controls = tiles
        self.channel_menu.items = items
        self.channel_menu.badge = str(sum(self.unread.values())) if self.unread else None

    def _switcher(self, channel: str) -> Callable:
        async def switch(e: ft.Event | None = None) -> None:
            await self.switch_channel(channel)

        return switch

    async def switch_channel(self, channel: str) -> None:
        self.show_channel(channel)
        if self.needs_room_key():
            self.ask_room_passphrase()
        self.page.update()
        await self.scroll_to_end()

    # ---- private rooms (fletchat/rooms.py) ----
    def needs_room_key(self) -> bool:
        """The open channel shows sealed messages this session cannot read."""
        return any(
            isinstance(r, MessageRow) and r.room == "no_key" for r in self.chat.controls
        )

    async def room_click(self, e: ft.Event | None = None) -> None:
        self.ask_room_passphrase()
        self.page.update()

    def ask_room_passphrase(self) -> ft.AlertDialog:
        """Enter the passphrase of the open channel (kept for this session only): what is sent
        here from now on is sealed, and sealed messages open."""
        self.room_passphrase.value = ""
        self.room_passphrase.error = None
        title = channel_title(self.channel, self.session.name)
        self.room_dialog = ft.AlertDialog(
            title=ft.Text(f"Private room {title}"),
            content=ft.Column(
                [
                    ft.Text(
                        "Messages here are sealed end to end with a passphrase shared by the "
                        "room's members. Enter it to read and write sealed messages; it is kept "
                        "only while this page is open.",
                        size=12,
                    ),
                    self.room_passphrase,
                ],
                width=340,
                tight=True,
            ),
            actions=[
                ft.TextButton("Cancel", on_click=lambda e: self.close_dialog()),
                ft.Button("Open room", on_click=self.room_submit),
            ],
            actions_alignment=ft.MainAxisAlignment.END,
        )
        self.page.show_dialog(self.room_dialog)
        return self.room_dialog

    async def room_submit(self, e: ft.Event | None = None) -> None:
        if self.set_room_passphrase(self.room_passphrase.value or ""):
            # Keyboard focus must leave the closed dialog's field, or the next Enter goes there.
            await asyncio.sleep(0.2)
            await self.new_message.focus()

    def set_room_passphrase(self, passphrase: str) -> bool:
        try:
            self.session.set_room_passphrase(self.channel, passphrase)
        except ValidationError as err:
            self.room_passphrase.error = str(err)
            self.page.update()
            return False
        self.close_dialog()
        self.show_channel(self.channel)  # sealed rows open now
        self.room_button.icon = ft.Icons.LOCK
        self.page.update()
        return True

    async def scroll_to_end(self, duration: int = 0) -> None:
        """Show the newest message (and follow new ones from there)."""
        self.following = True
        try:
            await asyncio.sleep(0.1)  # let Flutter lay out the rows just sent, then measure
            await self.chat.scroll_to(offset=-1, duration=duration)
        except (RuntimeError, AssertionError, TimeoutError):  # the session went away
            log.debug("could not scroll a closed session")

    # ---- hub events (pubsub runs async handlers on the page's loop) ----
    async def on_event(self, topic: str, event: object) -> None:  # noqa: C901 - ui.py is being split (issue 12)
        at_end = False
        target: ft.Control = self.page
        if isinstance(event, Message):
            at_end = self.on_message(event)
            if event.channel == self.channel:
                # Only the list changed: diffing the list, not the whole page, keeps fan-out to
                # many tabs cheaper (Page.update was 94% of the time per event in bench.profile).
                target = self.chat
        elif isinstance(event, RosterChanged):
            self.render_people(list(event.online), list(event.devices))
        elif Delivered is not None and isinstance(event, Delivered):
            for msg_id in event.ids:
                row = self.rows.get(msg_id)
                if row is not None and row.status is not None:
                    row.set_status(Status(STATUS_DELIVERED, event.at))
        elif ChannelsChanged is not None and isinstance(event, ChannelsChanged):
            self.render_channels()
        elif IdentityWarning is not None and isinstance(event, IdentityWarning):
            self.show_identity_warning(event)
        elif MessageRefused is not None and isinstance(event, MessageRefused):
            self.show_refused(event)
        elif StoreFailed is not None and isinstance(event, StoreFailed):
            self.banner_text.value, self.banner.visible = event.reason, True
        else:
            return
        try:
            target.update()
        except RuntimeError:  # the session went away while the event was in flight
            log.debug("dropping event for a closed session")
            return
        if at_end and self.following:
            await self.scroll_to_end(duration=150)

    def show_refused(self, event) -> None:
        """A peer refused messages written here: the row says who and why."""
        who = next((d.name for d in self.hub.lan_peers() if d.key == event.peer_id), event.peer_id)
        for msg_id, reason in event.refusals:
            row = self.rows.get(msg_id)
            if row is not None and row.status is not None:
                row.set_status(Status(STATUS_REFUSED, note=f"not accepted by {who}: {reason}"))

    def on_message(self, msg: Message) -> bool:
        """Show or count a message; True when it went to the end of the list on screen."""
        if msg.channel == self.channel or not self.full:
            return self.place(msg)
        mine = msg.origin == getattr(self.hub, "peer_id", None) and msg.author == self.session.name
        if msg.kind == KIND_CHAT and not mine and self.session.can_see(msg.channel):
            self.unread[msg.channel] = self.unread.get(msg.channel, 0) + 1
            self.render_channels()
        return False

    def render_people(self, online: list[Online], devices: list[Online]) -> None:
        self.people_title.value = f"Online ({len(online)})"
        count = len(devices)
        self.devices_line.value = (
            "no other devices found on the LAN"
            if count == 0
            else f"{count} other device{'s' if count != 1 else ''} on the LAN: "
            + ", ".join(f"{d.name} ({d.device})" for d in devices)
        )
        self.people.controls = [
            online_tile(p, on_click=self._dm_opener(p.name) if self.full else None) for p in online
        ]
        self.devices.controls = [
            device_tile(d, on_block=self._block_asker(d) if self.can_block else None)
            for d in devices
        ]

    # ---- trust: block, unblock, key changes (docs/security.md) ----
    def _block_asker(self, device: Online) -> Callable:
        async def ask(e: ft.Event | None = None) -> None:
            self.ask_block(device)

        return ask

    def ask_block(self, device: Online) -> ft.AlertDialog:
        """The confirm dialog before blocking a LAN device."""
        short = short_fingerprint(device.fingerprint)
        who = f"{device.name} ({device.device}{', ' + short if short else ''})"

        async def confirm(e: ft.Event | None = None) -> None:
            self.close_dialog()
            self.block_device(device.key)

        self.block_dialog = ft.AlertDialog(
            title=ft.Text("Block this device?"),
            content=ft.Text(
                f"{who} will be disconnected and refused from now on, and messages it wrote "
                "are dropped even when others relay them. You can unblock it later."
            ),
            actions=[
                ft.TextButton("Cancel", on_click=lambda e: self.close_dialog()),
                ft.Button("Block", on_click=confirm, bgcolor=ft.Colors.RED_700,
                          color=ft.Colors.WHITE),
            ],
            actions_alignment=ft.MainAxisAlignment.END,
        )
        self.page.show_dialog(self.block_dialog)
        self.page.update()
        return self.block_dialog

    def block_device(self, peer_id: str) -> None:
        try:
            self.hub.block(peer_id)
        except ValidationError as err:
            self.page.show_dialog(ft.SnackBar(ft.Text(str(err))))
            return
        self.render_blocked()
        self.page.update()

    def render_blocked(self) -> None:
        blocked_peers = getattr(self.hub, "blocked_peers", None)
        blocked = blocked_peers() if callable(blocked_peers) else {}
        self.blocked_list.controls = [
            blocked_tile(peer_id, name, self._unblocker(peer_id))
            for peer_id, name in sorted(blocked.items(), key=lambda kv: (kv[1].casefold(), kv[0]))
        ]
        self.blocked_panel.visible = bool(blocked)

    def _unblocker(self, peer_id: str) -> Callable:
        async def unblock(e: ft.Event | None = None) -> None:
            self.unblock_device(peer_id)

        return unblock

    def unblock_device(self, peer_id: str) -> None:
        self.hub.unblock(peer_id)
        self.render_blocked()
        self.page.update()

    def show_identity_warning(self, warning) -> None:
        """One banner per warning (peer and new key); it stays until "Trust new key"."""
        tag = (warning.peer_id, warning.new_fingerprint)
        if tag in self.warnings_shown:
            return
        self.warnings_shown.add(tag)
        self.identity_banners.controls.append(
            identity_banner(warning, self._trust_new_key(warning.peer_id))
        )

    def _trust_new_key(self, peer_id: str) -> Callable:
        async def trust(e: ft.Event | None = None) -> None:
            self.trust_new_key(peer_id)

        return trust

    def trust_new_key(self, peer_id: str) -> None:
        """Reset the key remembered for ``peer_id`` (its next key is trusted on first use)."""
        forget = getattr(self.hub, "forget_peer", None)
        if callable(forget):
            forget(peer_id)
        self.identity_banners.controls = [
            b for b in self.identity_banners.controls if b.data != peer_id
        ]
        self.warnings_shown = {t for t in self.warnings_shown if t[0] != peer_id}
        self.page.update()

    def _dm_opener(self, name: str) -> Callable:
        async def open_dm(e: ft.Event | None = None) -> None:
            await self.open_direct(name)

        return open_dm

    async def open_direct(self, name: str) -> None:
        """Clicking a person in the online panel opens the direct messages with them."""
        try:
            channel = self.session.direct_channel(name)
        except ValidationError as err:
            self.page.show_dialog(ft.SnackBar(ft.Text(str(err))))
            return
        self.opened.add(channel)
        await self.switch_channel(channel)

    # ---- older pages ----
    async def on_scroll(self, e: ft.OnScrollEvent) -> None:
        # Follow new messages only while the reader is at the bottom.
        self.following = e.pixels >= e.max_scroll_extent - 40
        if (
            e.pixels <= e.min_scroll_extent
            and (e.scroll_delta or 0) < 0  # the reader scrolled up to the top
            and e.max_scroll_extent > 0
            and self.has_older
            and not self.loading_older
        ):
            await self.load_older()

    async def load_older_click(self, e: ft.Event | None = None) -> None:
        await self.load_older()

    async def load_older(self) -> int:
        """Prepend the page before the first message shown; the reading position stays."""
        first = next(
            (r for r in self.chat.controls if isinstance(r, MessageRow) and r.message.hlc), None
        )
        if first is None or self.loading_older:
            return 0
        self.loading_older = True
        try:
            older = self.fetch(before=first.message.hlc)
            added = self.prepend(older)
            self.has_older = len(older) >= PAGE
            self.load_older_button.visible = self.has_older
            self.following = False
            self.page.update()
            if added:  # the row that was first stays at the top; the older page is above it
                await asyncio.sleep(0.1)  # once Flutter has laid out the new rows
                await self.chat.scroll_to(scroll_key=ft.ScrollKey(first.message.id), duration=0)
            return added
        finally:
            self.loading_older = False

    def prepend(self, older: list[Message]) -> int:
        pending = self.hub.pending_ids() if getattr(self.hub, "store", None) else set()
        fresh = [m for m in older if m.id not in self.rows]
        for i, msg in enumerate(fresh):
            self._add_row(i, msg, self.status_for(msg, pending))
        return len(fresh)

    # ---- search ----
    async def search_submit(self, e: ft.Event | None = None) -> None:
        query = (self.search_field.value or "").strip()
        if not query:
            return
        results = await asyncio.to_thread(self.hub.search, query)  # SQLite: off the loop
        tiles = [self.result_tile(msg, self.shown_snippet(msg, snippet)) for msg, snippet in results]
        body: ft.Control = (
            ft.ListView(tiles, spacing=4, height=min(420, 70 * len(tiles) + 10), width=460)
            if tiles
            else ft.Text(f'Nothing found for "{query}".')
        )
        self.results_dialog = ft.AlertDialog(
            title=ft.Text(f'Search: "{query}" ({len(results)} found)'),
            content=body,
            actions=[ft.TextButton("Close", on_click=lambda e: self.close_dialog())],
        )
        self.page.show_dialog(self.results_dialog)
        self.page.update()

    def shown_snippet(self, msg: Message, snippet: str) -> str:
        """A private room's hit shows what this session can read, never the sealed form."""
        shown, room = self.reveal(msg)
        return shown.text if room else snippet

    def result_tile(self, msg: Message, snippet: str) -> ft.Control:
        where = channel_title(msg.channel, self.session.name)
        head = f"{msg.author} in {where} at {format_time(msg.ts)}"

        async def go(e: ft.Event | None = None) -> None:
            self.close_dialog()
            await self.jump_to(msg)

        return ft.Semantics(
            label=f"Result: {head}: {plain_snippet(snippet)}",
            button=True,
            container=True,
            exclude_semantics=True,
            on_tap=go,
            content=ft.Container(
                on_click=go,
                border_radius=5,
                padding=6,
                bgcolor=ft.Colors.GREY_100,
                content=ft.Column(
                    [
                        ft.Row(
                            [
                                ft.CircleAvatar(
                                    content=ft.Text(initials(msg.author), size=10),
                                    color=ft.Colors.WHITE,
                                    bgcolor=avatar_color(msg.author),
                                    radius=11,
                                ),
                                ft.Text(msg.author, weight=ft.FontWeight.BOLD, size=13),
                                ft.Text(where, size=12, color=ft.Colors.BLUE_700),
                                ft.Text(format_time(msg.ts), size=11, color=ft.Colors.GREY_600),
                            ],
                            spacing=6,
                        ),
                        ft.Text(spans=highlight_spans(snippet), size=13, max_lines=3),
                    ],
                    spacing=2,
                    tight=True,
                ),
            ),
        )

    def close_dialog(self) -> None:
        self.page.pop_dialog()

    async def jump_to(self, msg: Message) -> None:
        """Show a message found by search: its channel, enough history to include it, scrolled
        to and highlighted for a moment."""
        if msg.channel.startswith("@") and self.session.can_see(msg.channel):
            self.opened.add(msg.channel)
        self.show_channel(msg.channel)
        for _ in range(JUMP_PAGES):
            if msg.id in self.rows or not self.has_older:
                break
            first = next(
                (r for r in self.chat.controls if isinstance(r, MessageRow) and r.message.hlc), None
            )
            if first is None:
                break
            older = self.fetch(before=first.message.hlc)
            self.prepend(older)
            self.has_older = len(older) >= PAGE
        self.load_older_button.visible = self.has_older
        row = self.rows.get(msg.id)
        self.following = False
        if row is not None:
            row.set_highlight(True)
        self.page.update()
        if row is None:
            return
        await asyncio.sleep(0.3)  # let the list lay out before measuring where the row is
        await self.chat.scroll_to(scroll_key=ft.ScrollKey(msg.id), duration=300)
        await asyncio.sleep(HIGHLIGHT_SECONDS)
        row.set_highlight(False)
        try:
            row.update()
        except (RuntimeError, AssertionError):  # the row was replaced meanwhile
            pass

    # ---- channels ----
    async def new_channel_click(self, e: ft.Event | None = None) -> None:
        self.channel_name.value = ""
        self.channel_name.error = None
        self.channel_dialog = ft.AlertDialog(
            title=ft.Text("New channel"),
            content=ft.Column([self.channel_name], width=300, height=90, tight=True),
            actions=[
                ft.TextButton("Cancel", on_click=lambda e: self.close_dialog()),
                ft.Button("Create", on_click=self.create_channel_click),
            ],
            actions_alignment=ft.MainAxisAlignment.END,
            on_dismiss=self.focus_composer,  # the closed dialog gives focus back to "+" first
        )
        self.page.show_dialog(self.channel_dialog)
        self.page.update()

    async def create_channel_click(self, e: ft.Event | None = None) -> None:
        try:
            name = self.session.create_channel(self.channel_name.value or "")
        except ValidationError as err:
            self.channel_name.error = str(err)
            self.channel_name.update()
            return
        self.close_dialog()
        await self.switch_channel(name)

    async def focus_composer(self, e: ft.Event | None = None) -> None:
        await self.new_message.focus()

    # ---- user actions ----
    async def join_click(self, e: ft.Event | None = None) -> None:
        try:
            self.session.join(self.join_name.value or "")
        except ValidationError as err:
            self.join_name.error = str(err)
            self.join_name.update()
            return
        self.page.pop_dialog()
        self.render_channels()  # direct messages for this name become visible
        self.page.update()
        await self.scroll_to_end()
        await self.new_message.focus()

    async def send_click(self, e: ft.Event | None = None) -> None:
        text = self.new_message.value or ""
        if not text.strip():
            return  # nothing to send; never clear what the browser may still be syncing
        try:
            sent = (  # the hub stores it (SQLite): off the event loop
                await asyncio.to_thread(self.session.send, text, self.channel) if self.full
                else self.session.send(text)
            )
        except ValidationError as err:
            # Refused: say why, and keep every character the person typed.
            self.new_message.error = str(err)
            self.new_message.update()
            return
        self.new_message.error = None
        if sent is not None:
            self.new_message.value = ""
        self.following = True  # one's own message brings the list back to the end
        self.new_message.update()
        await self.new_message.focus()


def make_session_main(
    hub_factory: Callable[[], object],
    device: str,
    prefill_name: str = "",
) -> Callable[[ft.Page], object]:
    """The per-session Flet ``main``: one ``HubSession`` and one ``ChatView`` per page."""
    from .hub import Hub

    async def session_main(page: ft.Page) -> None:
        hub = hub_factory()
        assert isinstance(hub, Hub)
        hub.use_pubsub(page.pubsub)
        session = HubSession(hub, device=device)
        view = ChatView(page, session, prefill_name)

        def on_disconnect(e: ft.Event) -> None:
            session.leave()

        def on_connect(e: ft.Event) -> None:
            session.rejoin()  # the tab came back (network blip, laptop lid): same name again

        page.on_disconnect = on_disconnect
        page.on_close = on_disconnect
        page.on_connect = on_connect
        view.mount()

    return session_main
