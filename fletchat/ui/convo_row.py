"""A conversation row: the tutorial's ChatMessage dressed with a ``RowDecor`` (reply quote,
markdown text, "edited", reactions, "seen by" and reach, grouping, date and "New messages" lines).

Still one isolated ``MessageRow``: a reaction, an edit or a read receipt redraws this row only
(``redecorate`` then one update of the row), never the list. A plain one-line message keeps the
tutorial's single Text, so an ordinary new row costs what it did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import flet as ft

from ..conversation.reducer import DELETED_TEXT
from ..markup import BlockKind, parse
from ..markup_flet import render
from ..model import KIND_CHAT, Message
from .convo_text import ACTIONS_TOOLTIP, EDITED_LABEL, Quote, RowDecor, reaction_label
from .rows import ChatMessage, MessageRow
from .text import Status, describe_for_screen_reader

MENTION_TINT = ft.Colors.with_opacity(0.14, ft.Colors.AMBER)
FOOTER_STYLE = {"size": 10, "color": ft.Colors.ON_SURFACE_VARIANT}

Handler = Callable[..., Awaitable[None]]


@lru_cache(maxsize=1024)
def is_plain(text: str) -> bool:
    """One paragraph of unstyled text: drawn as the tutorial's Text (fewer controls to send).
    Cached: every tab asks about the same new message (parsed once per host, not per tab)."""
    blocks = parse(text)
    if len(blocks) != 1 or blocks[0].kind is not BlockKind.PARAGRAPH:
        return False
    spans = blocks[0].spans
    return len(spans) <= 1 and all(
        not (s.bold or s.italic or s.code or s.href or s.muted) for s in spans
    )


def quote_control(quote: Quote, on_click: Handler | None) -> ft.Control:
    """The quoted snippet above a reply (the placeholder once the original is deleted); a click
    jumps to the original."""
    deleted_parent = quote.snippet == DELETED_TEXT
    snippet = quote.snippet
    return ft.Container(
        content=ft.Column(
            [
                ft.Text(quote.author, size=11, weight=ft.FontWeight.BOLD,
                        color=ft.Colors.PRIMARY),
                ft.Text(snippet, size=12, italic=deleted_parent or None, max_lines=2,
                        overflow=ft.TextOverflow.ELLIPSIS, color=ft.Colors.ON_SURFACE_VARIANT),
            ],
            spacing=0,
            tight=True,
        ),
        border=ft.Border.only(left=ft.BorderSide(3, ft.Colors.PRIMARY)),
        padding=ft.Padding.only(left=8, right=8, top=2, bottom=2),
        bgcolor=ft.Colors.with_opacity(0.05, ft.Colors.ON_SURFACE),
        border_radius=4,
        tooltip="Go to the original message",
        on_click=on_click,
    )


def reaction_chip(label: str, count: int, mine: bool, who: str,
                  on_click: Handler | None) -> ft.Control:
    return ft.Container(
        content=ft.Text(f"{label} {count}", size=12),
        bgcolor=ft.Colors.PRIMARY_CONTAINER if mine else ft.Colors.with_opacity(0.06, ft.Colors.ON_SURFACE),
        border=ft.Border.all(1, ft.Colors.BLUE_400 if mine else ft.Colors.TRANSPARENT),
        border_radius=10,
        padding=ft.Padding.symmetric(horizontal=6, vertical=1),
        tooltip=who,
        on_click=on_click,
    )


@dataclass(frozen=True)
class RowHandlers:
    """What a row's clicks do (none: a row that only shows)."""

    on_react: Callable[[Message, str], Handler] | None = None  # a reaction chip toggles
    on_actions: Callable[[ConvoRow], Handler] | None = None  # the actions dialog
    on_quote: Callable[[ConvoRow], Handler] | None = None  # the quote jumps to the original


class ConvoRow(MessageRow):
    """``MessageRow`` + ``RowDecor``; ``row`` is still the ChatMessage (status, highlight)."""

    PLACE_NOW = False  # ``dress`` lays the ChatMessage out, once

    def __init__(
        self,
        msg: Message,
        decor: RowDecor,
        status: Status | None = None,
        late: bool = False,
        unverified: bool = False,
        room: str = "",
        handlers: RowHandlers | None = None,
    ) -> None:
        self.original = msg
        h = handlers or RowHandlers()
        self._on_react, self._on_actions, self._on_quote = h.on_react, h.on_actions, h.on_quote
        on_actions = h.on_actions
        super().__init__(self._shown(msg, decor), status, late, unverified, room, decor.grouped)
        self.chat: ChatMessage | None = self.content if isinstance(self.content, ChatMessage) \
            else None
        self.decor = decor
        if on_actions is not None and self.chat is not None:
            self.on_tap = on_actions(self)  # screen readers (and tests) open the actions here
            self.button = True  # what makes the tap action reachable in the semantics tree
            self.on_tap_hint_text = ACTIONS_TOOLTIP
        self.dress()

    @staticmethod
    def _shown(msg: Message, decor: RowDecor) -> Message:
        """The message as its row shows it: the latest text (notices keep theirs)."""
        return replace(msg, text=decor.shown_text) if msg.kind == KIND_CHAT else msg

    @property
    def row(self) -> ft.Control:
        return self.chat if self.chat is not None else self.content

    def fold(self, msg: Message, others: tuple[str, ...]) -> None:
        self.original = msg
        super().fold(msg, others)

    def redecorate(self, decor: RowDecor) -> None:
        """New state (an edit, a reaction, a read receipt): redraw this row only."""
        self.decor = decor
        self.message = self._shown(self.original, decor)
        if self.chat is not None:
            self.chat.message = self.message
        self.dress()

    def set_status(self, status: Status | None) -> None:
        super().set_status(status)
        self.label += self.decor.suffix()

    # ---- drawing ----
    def dress(self) -> None:
        d = self.decor
        self.label = describe_for_screen_reader(self.message, self.status, self.late,
                                                self.unverified) + self.extra_label + d.suffix()
        inner = self.chat if self.chat is not None else self.content
        if self.chat is not None:
            self._dress_chat(self.chat, d)
        above = [ft.Text(line, size=12, weight=ft.FontWeight.BOLD,
                         color=ft.Colors.RED_400 if line == "New messages" else ft.Colors.ON_SURFACE_VARIANT,
                         text_align=ft.TextAlign.CENTER) for line in d.above]
        if above:
            self.content = ft.Column([*above, inner], spacing=4, tight=True,
                                     horizontal_alignment=ft.CrossAxisAlignment.CENTER)
        elif self.content is not inner:  # (setting it again costs a field-by-field __eq__)
            self.content = inner

    def _dress_chat(self, chat: ChatMessage, d: RowDecor) -> None:
        chat.body = chat.plain
        main: list[ft.Control] | None = None  # None: the plain text (one Text when alone)
        if d.deleted:
            chat.body = ft.Text(d.shown_text, italic=True, color=ft.Colors.ON_SURFACE_VARIANT)
            main = [chat.body]
        elif self.room or not d.text or is_plain(d.text):  # a file without a caption: no text
            if not self.room:  # (a private room's row keeps the text it was opened with)
                chat.text = d.text
        else:
            main = render(d.text)
            if isinstance(main[0], ft.Text):
                chat.body = main[0]
        if d.mentioned and not d.deleted:
            main = [ft.Container(ft.Column(main or [chat.plain], spacing=4, tight=True),
                                 bgcolor=MENTION_TINT, border_radius=4,
                                 padding=ft.Padding.symmetric(horizontal=4))]
        above: list[ft.Control] = []
        if d.quote is not None:
            click = self._on_quote(self) if self._on_quote else None
            above.append(quote_control(d.quote, click))
        below: list[ft.Control] = list(self.file_tiles)  # files_ui: kept on every redraw
        if d.reactions and not d.deleted:
            chips = [reaction_chip(r.emoji, r.count, r.mine, reaction_label(r),
                                   self._on_react(self.original, r.emoji) if self._on_react
                                   else None) for r in d.reactions]
            below.append(ft.Row(chips, spacing=4, wrap=True))
        footer = [p for p in (EDITED_LABEL if d.edited and not d.deleted else "", d.footer) if p]
        if footer:
            below.append(ft.Text(" \u00b7 ".join(footer), **FOOTER_STYLE,
                                 tooltip=", ".join(d.seen) if d.seen else None))
        if self._on_actions is not None and chat.actions is None:
            chat.actions = ft.IconButton(ft.Icons.MORE_HORIZ, icon_size=16,
                                         tooltip=ACTIONS_TOOLTIP, on_click=self._on_actions(self))
        chat.lay_out(main, above, below, grouped=d.grouped)
