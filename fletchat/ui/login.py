"""The tutorial's "Welcome!" name dialog as a component: shown when the view mounts, filled in
later with a name this device remembers, and closed by a valid name, which it saves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import flet as ft

from ..model import ValidationError
from .backend import ChatBackend
from .dialogs import login_dialog
from .remember import NameMemory
from .updates import in_background


class Login:
    def __init__(self, page: ft.Page, backend: ChatBackend, prefill_name: str,
                 joined: Callable[[], Awaitable[None]]) -> None:
        self.page, self.backend, self.prefill_name = page, backend, prefill_name
        self.joined = joined  # the view's part once the name is taken
        self.memory = NameMemory()
        self.dialog, self.name = login_dialog(prefill_name, self.join_click)
        self.building: asyncio.Event | None = None  # set once the view behind it is built

    def ask(self) -> None:
        """The dialog, filled in later with a name this device remembers (issue 17)."""
        self.page.show_dialog(self.dialog)
        if not self.prefill_name:
            in_background(self.page, self.memory.offer, self.name,
                          lambda: self.backend.name is None)

    def ask_first(self) -> None:
        """The dialog before the view behind it is built (the static web client): a name given
        meanwhile waits for ``built``."""
        self.building = asyncio.Event()
        self.ask()

    def built(self) -> None:
        """The view behind the dialog is on the page: ask now, or let a waiting join go on."""
        if self.building is None:
            self.ask()
        else:
            self.building.set()

    async def join_click(self, e: ft.Event | None = None) -> None:
        if self.building is not None:  # a name given before the view behind the login was built
            await self.building.wait()
        try:
            self.backend.join(self.name.value or "")
        except ValidationError as err:
            self.name.error = str(err)  # said under the field; the name typed stays
            self.name.update()
            return
        self.page.pop_dialog()
        await self.joined()
        await self.memory.save(self.backend.name or "")
