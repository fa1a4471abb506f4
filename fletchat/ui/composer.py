"""The tutorial's composer: a multi-line field (Enter sends, Shift+Enter breaks the line) and the
send button. A refused message keeps every character and says why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from .text import MESSAGE_HINT


class Composer:
    def __init__(self, on_send: Callable[[ft.Event | None], Awaitable[None]]) -> None:
        self.field = ft.TextField(
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

    def sent(self, cleared: bool) -> None:
        self.field.error = None
        if cleared:
            self.field.value = ""

    async def focus(self) -> None:
        await self.field.focus()
