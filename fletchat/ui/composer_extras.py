"""Around the composer: the "Replying to …" bar, the typing line, ``@name`` and ``:shortcode:``
suggestions, and the emoji picker button. The composer itself stays the tutorial's field."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import flet as ft

from ..aio import later
from ..conversation.emoji import shortcode_candidates
from ..conversation.mentions import active_query, candidates, complete
from ..conversation.signals import TYPING_TIMEOUT, typing_line
from ..model import Message
from .row_menu import Click, action, emoji_grid

EMOJI_TOOLTIP = "Insert emoji"
CANCEL_REPLY = "Cancel reply"


def suggestions_for(text: str, online: list[str], me: str) -> list[tuple[str, str]]:
    """(label, replacement for the token being typed) pairs: ``@name`` from people online,
    ``:code:`` emoji. Pure: the composer shows them as chips."""
    q = active_query(text)
    if q is not None:
        return [(f"@{n}", n) for n in candidates(q[1], online, me)]
    colon = text.rfind(":")
    if colon >= 0 and (colon == 0 or text[colon - 1] in " \n") and " " not in text[colon:]:
        return [(f"{e} {code}", e) for code, e in shortcode_candidates(text[colon:])]
    return []


def apply_suggestion(text: str, label: str, value: str) -> str:
    """The text with the token being typed replaced by the chosen suggestion."""
    if label.startswith("@"):
        return complete(text, len(text), value)[0]
    colon = text.rfind(":")
    return text[:colon] + value + " "


class ReplyBar:
    """ "Reply to Ada: what she said  [x]" above the composer while answering a message. Only an
    empty hidden container until the first reply: most tabs never answer a message, and every
    control mounted costs each tab's heap (issue 12)."""

    def __init__(self, on_cancel: Click) -> None:
        self.parent: Message | None = None
        self.on_cancel = on_cancel
        self.text: ft.Text | None = None
        self.control = ft.Container(visible=False)

    def _build(self) -> ft.Text:
        text = ft.Text("", size=12, italic=True, expand=True, max_lines=1,
                       overflow=ft.TextOverflow.ELLIPSIS)
        cancel = ft.IconButton(ft.Icons.CLOSE, icon_size=16, tooltip=CANCEL_REPLY,
                               on_click=self.on_cancel)
        c = self.control
        c.content = ft.Row([ft.Icon(ft.Icons.REPLY, size=16), text,
                            action(CANCEL_REPLY, cancel, self.on_cancel)], spacing=6)
        c.border = ft.Border.only(left=ft.BorderSide(3, ft.Colors.PRIMARY))
        c.padding = ft.Padding.only(left=8)
        return text

    def start(self, parent: Message, snippet: str) -> None:
        self.parent = parent
        if self.text is None:
            self.text = self._build()
        self.text.value = f"Replying to {parent.author}: {snippet}"
        self.control.visible = True

    def clear(self) -> None:
        self.parent = None
        self.control.visible = False


class TypingLine:
    """ "Ada is typing…" above the composer; cleared by itself when the signals stop."""

    def __init__(self, names: Callable[[], list[str]], mark: Callable[[ft.Control], None]) -> None:
        self.names = names
        self.mark = mark
        self.control = ft.Text("", size=12, italic=True, color=ft.Colors.ON_SURFACE_VARIANT)
        self._expiry: asyncio.TimerHandle | None = None
        self._closed = False

    def show(self, names: list[str]) -> None:
        line = typing_line(names)
        if line != self.control.value:
            self.control.value = line
            self.mark(self.control)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if names and not self._closed:
            # ask again once the last signal has timed out: nothing else says it stopped
            self._expiry = later(TYPING_TIMEOUT + 0.5, lambda: self.show(self.names()))

    def close(self) -> None:
        """The tab closed: a pending look-again would keep the whole view alive until it ran
        (and none is made after: a handler that resumes after the close may still call show)."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


class Suggestions:
    """Chips above the composer for the ``@name`` or ``:code`` being typed."""

    def __init__(self, on_pick: Callable[[str, str], Awaitable[None]]) -> None:
        self.on_pick = on_pick
        self.control = ft.Row([], spacing=4, wrap=True, visible=False)
        self.shown: list[tuple[str, str]] = []

    def show(self, items: list[tuple[str, str]]) -> bool:
        """True when what is shown changed."""
        if items == self.shown:
            return False
        self.shown = items
        self.control.controls = [action(f"Suggest {label}", ft.Chip(
            label=ft.Text(label), on_click=self._picker(label, value)),
            self._picker(label, value)) for label, value in items]
        self.control.visible = bool(items)
        return True

    def _picker(self, label: str, value: str) -> Click:
        async def pick(e: ft.Event | None = None) -> None:
            await self.on_pick(label, value)

        return pick


class EmojiButton:
    """The composer's emoji picker: a grid; a pick is added where the text ends."""

    def __init__(self, page: ft.Page, on_pick: Callable[[str], Awaitable[None]]) -> None:
        self.page = page
        self.on_pick = on_pick
        self.control = action(EMOJI_TOOLTIP, ft.IconButton(
            ft.Icons.EMOJI_EMOTIONS_OUTLINED, tooltip=EMOJI_TOOLTIP, on_click=self.open),
            self.open)

    async def open(self, e: ft.Event | None = None) -> None:
        def pick(emoji: str) -> Click:
            async def chosen(e: ft.Event | None = None) -> None:
                self.page.pop_dialog()
                await self.on_pick(emoji)

            return chosen

        self.page.show_dialog(ft.AlertDialog(title=ft.Text("Emoji", size=16),
                                             content=emoji_grid(pick, lambda e: f"Insert {e}")))
