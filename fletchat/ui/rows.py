"""The tutorial's ChatMessage row, and the list entry around it.

A row is *isolated* (Flet does not walk into it when its chunk is updated) and updates itself
when its delivery status or highlight changes, so a new message never re-diffs old rows. Kept lean
(an ordinary message is the Semantics screen readers need, a Row, the avatar and one Text).
"""

from __future__ import annotations

from collections.abc import Sequence

import flet as ft

from ..model import KIND_CHAT, Message, avatar_color, initials
from .links import body_spans
from .presence_runs import fold_label, fold_line
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
BODY_STYLE = ft.TextStyle(weight=ft.FontWeight.NORMAL)  # the message after the bold name
AVATAR_SPACE = 40  # a grouped row keeps the text aligned under the group's avatar
GROUPED_MARGIN = ft.Margin.only(left=AVATAR_SPACE + 10)  # the avatar and the Row's spacing


DELIVERED_ICON = (ft.Icons.DONE, ft.Colors.GREEN_700)



class ChatMessage(ft.Row):
    """Initials avatar (stable colour), bold name with the time, the text; a delivery mark for
    messages written here and chips for "arrived late", "unverified" and private rooms.

    Kept lean (issue 12: every control of a new row is built, diffed and sent in every tab): an
    ordinary row is **one Text** beside its avatar, the name, time and delivery words as its
    spans and the message after a line break (a grouped row, the same person again: just the
    message, the delivery words after it); the avatar is one control (its initials are the
    CircleAvatar's own text) and the delivery tick sits after the text. Only a row with more to
    show (a reply's quote, Markdown, files, reactions, a footer, chips, a sealed or deleted
    text) has a Column: the name line, then those parts (``lay_out``)."""

    def __init__(
        self,
        message: Message,
        status: Status | None = None,
        late: bool = False,
        unverified: bool = False,
        room: str = "",
        grouped: bool = False,
        place: bool = True,
    ) -> None:
        """``place``: lay the row out now (a ``ConvoRow`` lays it out once, when dressed)."""
        super().__init__(vertical_alignment=ft.CrossAxisAlignment.START)
        self.message = message
        self.late, self.unverified, self.room = late, unverified, room
        self.status = status
        self.grouped = grouped
        self.sealed = room in ("no_key", "refused")
        self.text = message.text  # the plain text the row shows (ConvoRow: the latest edit)
        self.plain = ft.Text(selectable=True, italic=self.sealed or None,
                             color=ft.Colors.ON_SURFACE_VARIANT if self.sealed else None)
        self.body: ft.Control = self.plain  # what a highlight tints (Markdown: its first Text)
        self.name: ft.Text | None = None  # the name line of a row with a column
        self.header: ft.Control | None = None
        self._column: ft.Column | None = None
        self.above: list[ft.Control] = []  # between the name line and the body (a quote)
        self.main: list[ft.Control] | None = None  # None: the plain text in ``body``
        self.below: list[ft.Control] = []  # after the body (files, reactions, footer)
        self.actions: ft.Control | None = None  # the "..." button, last in the row
        self.tick: ft.Icon | None = None  # the delivery mark (kept: a new status recolours it)
        self.avatar: ft.Control | None = None if grouped else self._avatar()
        if place:
            self.place()

    def _avatar(self) -> ft.Control:
        return ft.CircleAvatar(
            content=initials(self.message.author),
            color=ft.Colors.WHITE,
            bgcolor=avatar_color(self.message.author),
        )

    @property
    def column(self) -> ft.Column:
        """The name line and the parts of a row with more than one text (made when needed)."""
        if self._column is None:
            self._column = ft.Column(tight=True, spacing=5, expand=True)
        return self._column

    @property
    def compact(self) -> bool:
        """Shown as one Text (name line and message): nothing else to show, nothing sealed."""
        return (self.main is None and not self.above and not self.below and not self.sealed
                and not self._has_chips())

    def lay_out(self, main: list[ft.Control] | None = None, above: Sequence[ft.Control] = (),
                below: Sequence[ft.Control] = (), grouped: bool | None = None) -> None:
        """What the row shows under its name line: ``main`` replaces the plain text (Markdown,
        a deleted placeholder); ``above`` and ``below`` go before and after it; ``grouped``: under
        the same person's previous row (no avatar; a margin keeps the text aligned)."""
        self.main, self.above, self.below = main, list(above), list(below)
        if grouped is not None:
            self.grouped = grouped
            if not grouped:
                self.avatar = self.avatar or self._avatar()
        self.place()

    def set_status(self, status: Status | None) -> None:
        self.status = status
        self.place()

    def _has_chips(self) -> bool:
        return self.late or self.unverified or self.room in ("open", "no_key", "refused")

    def _chips(self) -> list[ft.Control]:
        chips: list[ft.Control] = []
        if self.late:
            chips.append(late_chip())
        if self.unverified:
            chips.append(unverified_chip())
        if self.room in ("open", "no_key", "refused"):
            chips.append(room_chip(self.room))
        return chips

    def _header_spans(self) -> list[ft.TextSpan]:
        """The time and the delivery words, as one span (each span is a control too)."""
        words = [] if self.grouped else [format_time(self.message.ts)]
        if self.status is not None:
            words.append(self.status.label)
        if not words:
            return []
        return [ft.TextSpan("".join(f"  {w}" for w in words),
                            style=STATUS_STYLE if self.grouped else TIME_STYLE)]

    def _fill_body(self, with_name: bool) -> None:
        """The plain Text: the text alone, or (compact) after the name line's spans."""
        body = self.plain
        links = None if self.sealed else body_spans(self.text)  # links (issue 17)
        if not with_name:
            body.value, body.spans, body.weight = (None if links else self.text), links, None
            return
        head = self._header_spans()
        if self.grouped:  # no name: the message first, the delivery words after it
            body.value, body.weight = (None if links else self.text), None
            body.spans = [*(links or []), *head] or None
            return
        text = ft.TextSpan("\n", style=BODY_STYLE, spans=links) if links else \
            ft.TextSpan(f"\n{self.text}", style=BODY_STYLE)
        body.value, body.weight = self.message.author, ft.FontWeight.BOLD
        body.spans = [*head, text]

    def place(self) -> None:
        """(Re)build the row from what it has: one Text when ``compact``, else the name line
        (a Row with the chips, when there are any) over the parts in a Column."""
        tick: list[ft.Control] = []
        if self.status is not None:
            icon, colour = STATUS_ICONS.get(self.status.state, DELIVERED_ICON)
            if self.tick is None:
                self.tick = ft.Icon(icon, size=13, color=colour)
            self.tick.icon, self.tick.color = icon, colour
            tick.append(self.tick)
        lead = [self.avatar] if not self.grouped and self.avatar is not None else []
        tail = [self.actions] if self.actions is not None else []
        if self.compact:
            self._fill_body(with_name=True)
            self.plain.margin = GROUPED_MARGIN if self.grouped else None
            self.plain.expand = True  # (in a Column it would ask for unbounded height)
            self.header = None
            self.controls = [*lead, self.plain, *tick, *tail]
            return
        self._fill_body(with_name=False)
        self.plain.margin = self.plain.expand = None
        chips = self._chips() if self._has_chips() else []
        spans = self._header_spans()
        header: ft.Control | None = None
        if not self.grouped or spans or chips:
            name = self.name or ft.Text(weight=ft.FontWeight.BOLD)
            self.name = name
            name.value = "" if self.grouped else self.message.author
            name.spans = spans or None
            header = name
            if chips:
                header = ft.Row([name, *chips], spacing=8,
                                vertical_alignment=ft.CrossAxisAlignment.CENTER)
        self.header = header
        column = self.column
        column.margin = GROUPED_MARGIN if self.grouped else None
        main = [self.plain] if self.main is None else self.main
        column.controls = [*([header] if header is not None else []), *self.above, *main,
                           *self.below]
        self.controls = [*lead, column, *tick, *tail]

    def set_highlight(self, on: bool) -> None:
        self.body.bgcolor = HIGHLIGHT if on else None


class MessageRow(Isolated, ft.Semantics):
    """One entry of the conversation: a ChatMessage (or a notice line) in Semantics, because
    selectable Text is invisible to screen readers. Keyed by message id for ``scroll_to``."""

    PLACE_NOW = True  # lay the ChatMessage out when built (ConvoRow: once, when dressed)

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
            row: ft.Control = ChatMessage(msg, status, late, unverified, room, grouped,
                                          place=self.PLACE_NOW)
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
        self.notice: ft.Text | None = None if msg.kind == KIND_CHAT else row  # type: ignore
        self.folded: tuple[str, ...] = ()  # a run's last notice: who else it stands for
        self.extra_label = ""  # what the row carries besides text (files_ui: its attachments)
        self.file_tiles: list[ft.Control] = []  # files_ui: the attachments' tiles

    @property
    def row(self) -> ft.Control:
        return self.content

    def fold(self, msg: Message, others: tuple[str, ...]) -> None:
        """This notice line now says ``msg`` and stands for ``others`` too (the last line of
        a long run of joins and leaves, ``presence_runs``)."""
        self.message = msg
        self.folded = others
        if self.notice is not None:
            self.notice.value = fold_line(msg, others)
        self.label = fold_label(msg, others) + self.extra_label

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
