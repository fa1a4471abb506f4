"""Private rooms in the header: the lock button and the passphrase dialog (fletchat/rooms.py
seals and opens; the key is kept in this session only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from ..model import ValidationError
from .backend import ChatBackend
from .dialogs import room_dialog
from .text import ROOM_PASSPHRASE, channel_title
from .updates import after_layout


class RoomControls:
    def __init__(self, page: ft.Page, backend: ChatBackend,
                 on_opened: Callable[[], Awaitable[None]], focus: Callable[[], Awaitable[None]]) -> None:
        self.page = page
        self.backend = backend
        self.on_opened = on_opened
        self.focus = focus
        self.channel = ""
        self.button = ft.IconButton(icon=ft.Icons.LOCK_OUTLINE, tooltip=ROOM_PASSPHRASE,
                                    on_click=self.click, visible=backend.capabilities.rooms)
        self.passphrase = ft.TextField(label="Passphrase", password=True, autofocus=True,
                                       can_reveal_password=True, on_submit=self.submit)
        self.dialog: ft.AlertDialog | None = None

    def show_for(self, channel: str) -> ft.Control:
        self.channel = channel
        keyed = self.backend.has_room_key(channel)
        self.button.icon = ft.Icons.LOCK if keyed else ft.Icons.LOCK_OUTLINE
        return self.button

    async def click(self, e: ft.Event | None = None) -> None:
        self.ask()

    def ask(self) -> ft.AlertDialog:
        """Enter the open channel's passphrase: what is sent there from now on is sealed, and
        sealed messages open."""
        self.passphrase.value, self.passphrase.error = "", None
        title = channel_title(self.channel, self.backend.name)
        self.dialog = room_dialog(title, self.passphrase, self.submit,
                                  lambda e: self.page.pop_dialog())
        self.page.show_dialog(self.dialog)
        return self.dialog

    async def submit(self, e: ft.Event | None = None) -> None:
        if await self.set_passphrase(self.passphrase.value or ""):
            await after_layout()  # focus must leave the closed dialog's field first
            await self.focus()

    async def set_passphrase(self, passphrase: str) -> bool:
        try:
            self.backend.set_room_passphrase(self.channel, passphrase)
        except ValidationError as err:
            self.passphrase.error = str(err)
            if self.passphrase.parent is not None:
                self.passphrase.update()
            return False
        self.page.pop_dialog()
        await self.on_opened()  # sealed rows open now
        return True
