"""The tutorial's "Welcome!" name dialog as a component: shown when the view mounts, filled in
later with a name this device remembers, and closed by a valid name, which it saves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import flet as ft

from ..events import NameRefused
from ..model import ValidationError
from ..owner import new_owner_secret
from .backend import ChatBackend
from .dialogs import login_dialog
from .remember import NameMemory
from .updates import in_background

OWNER_WAIT_SECONDS = 5.0  # a join waits this long at most for the browser's owner secret


class Login:
    def __init__(self, page: ft.Page, backend: ChatBackend, prefill_name: str,
                 joined: Callable[[], Awaitable[None]]) -> None:
        self.page, self.backend, self.prefill_name = page, backend, prefill_name
        self.joined = joined  # the view's part once the name is taken
        self.memory = NameMemory()
        self.dialog, self.name = login_dialog(prefill_name, self.join_click)
        self.building: asyncio.Event | None = None  # set once the view behind it is built
        self._owner: asyncio.Future[str] | None = None  # the browser's owner secret, loading
        self._candidate = new_owner_secret()  # kept if the browser has none yet

    def _load_owner(self) -> asyncio.Future[str]:
        """Started with the dialog: the client storage answers while the name is typed."""
        if self._owner is None:
            self._owner = asyncio.ensure_future(self.memory.owner_secret(self._candidate))
        return self._owner

    async def owner_secret(self) -> str:
        """The browser's owner secret; a loaded client that has not answered by the time the
        name is given makes the join wait ``OWNER_WAIT_SECONDS`` at most, then it joins with the
        candidate, which the loading still keeps if the browser had none."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._load_owner()), OWNER_WAIT_SECONDS)
        except TimeoutError:
            return self._candidate

    def ask(self) -> None:
        """The dialog, filled in later with a name this device remembers (issue 17)."""
        self.page.show_dialog(self.dialog)
        try:
            asyncio.get_running_loop()
            self._load_owner()
        except RuntimeError:  # no loop yet (a unit test's page): loaded at the join
            pass
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

    def on_event(self, event: object) -> bool:
        """True when the event was the login's (the host refused the name)."""
        if isinstance(event, NameRefused):
            self.refused(event.reason)
            return True
        return False

    def refused(self, reason: str) -> None:
        """The name was refused after the dialog closed (a static client hears it from the
        host; a tab that came back finds it taken): ask again, saying why."""
        self.name.error = reason
        self.page.show_dialog(self.dialog)

    async def join_click(self, e: ft.Event | None = None) -> None:
        if self.building is not None:  # a name given before the view behind the login was built
            await self.building.wait()
        owner = await self.owner_secret()
        try:
            self.backend.join(self.name.value or "", owner)
        except ValidationError as err:
            self.name.error = str(err)  # said under the field; the name typed stays
            self.name.update()
            return
        self.page.pop_dialog()
        await self.joined()
        await self.memory.save(self.backend.name or "")
