"""The tutorial's composer: a multi-line field (Enter sends, Shift+Enter breaks the line) and the
send button. A refused message keeps every character and says why."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import flet as ft

from .text import MESSAGE_HINT

_requests = itertools.count(1)


@ft.control("TextField")
class ShiftEnterField(ft.TextField):
    """A TextField whose focus requests reach it with ``shift_enter`` on.

    Flet 1.0.5's client answers ``TextField.focus()`` by focusing its plain focus node, but a
    ``shift_enter`` field is built on a second node (the one that turns Enter into submit), so
    the request does nothing: after a dialog or a click on a button, typing went nowhere (issue
    17 item 3). The client also watches a ``focus`` property and, when its value changes,
    focuses the node the field is built on: ``request_focus`` sets it to a new value."""

    focus: str | None = None  # type: ignore[assignment]  # the client property, not the method

    def request_focus(self) -> None:
        self.focus = str(next(_requests))


class Composer:
    def __init__(self, on_send: Callable[[ft.Event | None], Awaitable[None]]) -> None:
        self.field = ShiftEnterField(
            hint_text=MESSAGE_HINT,
            autofocus=True,
            shift_enter=True,
            min_lines=1,
            max_lines=5,
            filled=True,
            expand=True,
            on_submit=on_send,
        )
        self.button = ft.IconButton(
            icon=ft.Icons.SEND_ROUNDED, tooltip="Send message", on_click=on_send
        )
        self.control = ft.Row([self.field, self.button])

    @property
    def text(self) -> str:
        return self.field.value or ""

    def refused(self, why: str) -> None:
        self.field.error = why

    def restore(self, text: str) -> None:
        """A refused message back in the field, before whatever was typed since it was cleared."""
        self.field.value = text + (self.field.value or "")

    def sent(self) -> None:
        self.field.error = None
        self.field.value = ""

    async def focus(self) -> None:
        self.field.request_focus()
        if self.field.parent is not None:
            self.field.update()
