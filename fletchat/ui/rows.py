"""The tutorial's ChatMessage row, and the list entry around it.

A row is *isolated* (Flet does not walk into it when its chunk is updated) and updates itself
when its delivery status or highlight changes, so a new message never re-diffs old rows. Kept lean
(7 controls for an ordinary message: the tutorial's 6 plus the Semantics screen readers need).
"""

from __future__ import annotations

import flet as ft

from ..model import KIND_CHAT, Message, avatar_color, initials
from .links import body_spans
from .text import (
    LATE_LABEL,
    PRIVATE_LABEL,
    STATUS_PENDING,
    STATUS_REFUSED,
    UNVERIFIED_LABEL,
    Status,
    describe_for_screen_reader,
    format_time,
)
from .updates import Isolated

TIME_STYLE = ft.TextStyle(size=11, color=ft.Colors.ON_SURFACE_VARIANT, weight=ft.FontWeight.NORMAL)
HIGHLIGHT = ft.Colors.AMBER_100


def chip(text: str, color: str, bgcolor: str, tooltip: str, icon: str | None = None) -> ft.Control:
    label: ft.Control = ft.Text(text, size=10, color=color)
    if icon is not None:
        label = ft.Row([ft.Icon(icon, size=11, color=color), label], spacing=2, tight=True)
    return ft.Container(
        content=label,
        bgcolor=bgcolor,
        border_radius=8,
        padding=ft.Padding.symmetric(horizontal=6, vertical=1),
        tooltip=tooltip,
    )


def late_chip() -> ft.Control:
    return chip(LATE_LABEL, ft.Colors.BROWN_700, ft.Colors.AMBER_100,
                "This message was written earlier and reached this device only now.")


def unverified_chip() -> ft.Control:
    return chip(UNVERIFIED_LABEL, ft.Colors.GREY_800, ft.Colors.GREY_200,
                "Relayed from a device this one has never met: its signature could not be "
                "checked, so it may not be from who it says.")


def room_chip(state: str) -> ft.Control:
    """Beside a message of a private room: opened with the room key, or not readable here."""
    if state == "open":
        return chip(PRIVATE_LABEL, ft.Colors.GREEN_800, ft.Colors.GREEN_50,
                    "Sealed end to end with the room passphrase; opened here.", ft.Icons.LOCK)
    return chip("sealed", ft.Colors.RED_800, ft.Colors.RED_50,
                "Sealed with a room passphrase this session does not have (or a forgery).",
                ft.Icons.LOCK_OUTLINE)


STATUS_ICONS = {
    STATUS_PENDING: (ft.Icons.SCHEDULE, ft.Colors.GREY_500),
    STATUS_REFUSED: (ft.Icons.ERROR_OUTLINE, ft.Colors.RED_700),
}
STATUS_STYLE = ft.TextStyle(size=10, color=ft.Colors.ON_SURFACE_VARIANT, weight=ft.FontWeight.NORMAL)
AVATAR_SPACE = 40  # a grouped row keeps the text aligned under the group's avatar
GROUPED_MARGIN = ft.Margin.only(left=AVATAR_SPACE + 10)  # the avatar and the Row's spacing


def status_icon(status: Status) -> ft.Control:
    """The little delivery mark after the time: a clock while pending, a tick when delivered
    (its words are a span of the name line: one control, not a Row of two)."""
    icon, colour = STATUS_ICONS.get(status.state, (ft.Icons.DONE, ft.Colors.GREEN_700))
    return ft.Icon(icon, size=13, color=colour)


class ChatMessage(ft.Row):
    """Initials avatar (stable colour), bold name with the time, the text; a delivery mark for
    messages written here and chips for "arrived late", "unverified" and private rooms.

    The header line is built from what the row has: a grouped row (the same person again) has
    no avatar and no name line unless a delivery mark or a chip needs one; the delivery words
    are a span of the name line. Fewer controls per row is less for Flet to build, diff and
    send in every tab (issue 12)."""

    def __init__(
        self,
        message: Message,
        status: Status | None = None,
        late: bool = False,
        unverified: bool = False,
        room: str = "",
        grouped: bool = False,
    ) -> None:
        super().__init__(vertical_alignment=ft.CrossAxisAlignment.START)
        self.message = message
        self.late, self.unverified, self.room = late, unverified, room
        self.status = status
        self.grouped = grouped
        sealed = room in ("no_key", "refused")
        self.name = ft.Text(message.author, weight=ft.FontWeight.BOLD)
        spans = None if sealed else body_spans(message.text)  # links (issue 17)
        self.body = ft.Text(
            None if spans else message.text,
            spans=spans,
            selectable=True,
            italic=sealed or None,
            color=ft.Colors.ON_SURFACE_VARIANT if sealed else None,
        )
        self.header: ft.Control | None = None
        self.column = ft.Column([self.body], tight=True, spacing=5, expand=True,
                                margin=GROUPED_MARGIN if grouped else None)
        self.avatar: ft.Control | None = None if grouped else self._avatar()
        self.controls = [self.column] if grouped else [self.avatar, self.column]
        self.refresh_header()

    def _avatar(self) -> ft.Control:
        return ft.CircleAvatar(
            content=ft.Text(initials(self.message.author)),
            color=ft.Colors.WHITE,
            bgcolor=avatar_color(self.message.author),
        )

    def set_grouped(self, grouped: bool) -> None:
        """Under the same person's previous row: no avatar (a margin keeps the text aligned)."""
        self.grouped = grouped
        self.controls = [c for c in self.controls if c is not self.avatar]
        if not grouped:
            self.avatar = self.avatar or self._avatar()
            self.controls.insert(0, self.avatar)
        self.column.margin = GROUPED_MARGIN if grouped else None
        self.refresh_header()

    def set_status(self, status: Status | None) -> None:
        self.status = status
        self.refresh_header()

    def _extras(self) -> list[ft.Control]:
        extras: list[ft.Control] = []
        if self.status is not None:
            extras.append(status_icon(self.status))
        if self.late:
            extras.append(late_chip())
        if self.unverified:
            extras.append(unverified_chip())
        if self.room in ("open", "no_key", "refused"):
            extras.append(room_chip(self.room))
        return extras

    def refresh_header(self) -> None:
        """(Re)build the name line (the first control of the column), or drop it when a grouped
        row has nothing to show there."""
        extras = self._extras()
        spans: list[ft.TextSpan] = []
        if not self.grouped:
            spans.append(ft.TextSpan(f"  {format_time(self.message.ts)}", style=TIME_STYLE))
        if self.status is not None:
            spans.append(ft.TextSpan(f"  {self.status.label}", style=STATUS_STYLE))
        self.name.value = "" if self.grouped else self.message.author
        self.name.spans = spans
        header: ft.Control | None = self.name
        if extras:
            header = ft.Row([self.name, *extras], spacing=8,
                            vertical_alignment=ft.CrossAxisAlignment.CENTER)
        elif self.grouped and not spans:
            header = None
        parts = self.column.controls
        if self.header is not None and parts and parts[0] is self.header:
            parts.pop(0)
        if header is not None:
            parts.insert(0, header)
        self.header = header

    def set_highlight(self, on: bool) -> None:
        self.body.bgcolor = HIGHLIGHT if on else None


class MessageRow(Isolated, ft.Semantics):
    """One entry of the conversation: a ChatMessage (or a notice line) in Semantics, because
    selectable Text is invisible to screen readers. Keyed by message id for ``scroll_to``."""

    def __init__(
        self,
        msg: Message,
        status: Status | None = None,
        late: bool = False,
        unverified: bool = False,
        room: str = "",
        grouped: bool = False,
    ) -> None:
        unverified = unverified and msg.kind == KIND_CHAT
        if msg.kind == KIND_CHAT:
            row: ft.Control = ChatMessage(msg, status, late, unverified, room, grouped)
        else:
            notice = msg.display_text + (f" ({LATE_LABEL})" if late else "")
            row = ft.Text(notice, italic=True, color=ft.Colors.ON_SURFACE_VARIANT, size=12)
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
        self.extra_label = ""  # what the row carries besides text (files_ui: its attachments)
        self.file_tiles: list[ft.Control] = []  # files_ui: the attachments' tiles

    @property
    def row(self) -> ft.Control:
        return self.content

    def set_status(self, status: Status | None) -> None:
        self.status = status
        self.label = describe_for_screen_reader(self.message, status, self.late, self.unverified)
        self.label += self.extra_label
        if isinstance(self.row, ChatMessage):
            self.row.set_status(status)

    def set_extra_label(self, words: str) -> None:
        self.extra_label = f", {words}" if words else ""
        self.set_status(self.status)

    def set_highlight(self, on: bool) -> None:
        if isinstance(self.row, ChatMessage):
            self.row.set_highlight(on)
        elif isinstance(self.row, ft.Text):
            self.row.bgcolor = HIGHLIGHT if on else None


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
