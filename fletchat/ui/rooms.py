"""Private rooms in the header: the lock button and the passphrase dialog (fletchat/rooms.py
seals and opens; the key is kept in this session only).

Two actions that used to look the same (issue 17): **unlock** a room whose messages are sealed
already (you were given its passphrase), and **make a channel private** (from now on what you send
there is sealed; give the passphrase to the others). Success is confirmed, the channel list marks
the channel with a lock, the field is emptied (a reload never shows the passphrase again), and
focus goes back to the composer once the dialog is gone, so nothing typed next is lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from ..events import RoomsUnlocked
from ..model import ValidationError
from .backend import ChatBackend
from .dialogs import room_dialog
from .text import ROOM_LOCK_TOOLTIP, ROOM_OPEN_TOOLTIP, channel_title


class RoomControls:
    def __init__(self, page: ft.Page, backend: ChatBackend,
                 on_opened: Callable[[], Awaitable[None]], focus: Callable[[], Awaitable[None]],
                 sealed_here: Callable[[], bool] = lambda: False) -> None:
        self.page = page
        self.backend = backend
        self.on_opened = on_opened
        self.focus = focus
        self.sealed_here = sealed_here  # the open channel shows sealed messages
        self.channel = ""
        self.unlock = False
        self.confirmation = ""
        self.button = ft.IconButton(icon=ft.Icons.LOCK_OUTLINE, tooltip=ROOM_LOCK_TOOLTIP,
                                    on_click=self.click, visible=backend.capabilities.rooms)
        self.passphrase = ft.TextField(label="Passphrase", password=True, autofocus=True,
                                       can_reveal_password=True, on_submit=self.submit,
                                       error_max_lines=3)
        self.dialog: ft.AlertDialog | None = None
        # The confirmation, under the header (a SnackBar took the browser's focus from the
        # composer as it appeared, and what was typed then was lost).
        self.note = ft.Text("", size=12, italic=True, visible=False)

    def show_for(self, channel: str) -> tuple[ft.Control, ft.Control]:
        """The lock for ``channel`` (and no confirmation about another channel)."""
        if channel != self.channel:
            self.note.visible = False
        self.channel = channel
        keyed = self.backend.has_room_key(channel)
        self.button.icon = ft.Icons.LOCK if keyed else ft.Icons.LOCK_OUTLINE
        self.button.tooltip = ROOM_OPEN_TOOLTIP if keyed else ROOM_LOCK_TOOLTIP
        return self.button, self.note

    async def click(self, e: ft.Event | None = None) -> None:
        await self.open()

    async def open(self) -> None:
        """The composer takes the focus first, then the dialog shows: when the dialog goes
        (Escape too), Flutter hands the focus back to the composer by itself, in the frame the
        dialog leaves, instead of to the button that opened it."""
        await self.focus()
        self.ask()

    def ask(self) -> ft.AlertDialog:
        """Unlock (sealed messages here already) or make private (none yet)."""
        self.passphrase.value, self.passphrase.error = "", None
        self.unlock = self.sealed_here()
        title = channel_title(self.channel, self.backend.name)
        self.dialog = room_dialog(title, self.passphrase, self.submit, self.cancel,
                                  self.unlock, self.dismissed)
        self.page.show_dialog(self.dialog)
        return self.dialog

    async def cancel(self, e: ft.Event | None = None) -> None:
        self.passphrase.value = ""
        await self.close()

    async def close(self) -> None:
        """Pop the dialog and ask for the composer at once: Flutter moves its focus there while
        the dialog fades, and the browser's follows when the dialog's last frame is gone (the
        field is ready for the first key typed after it)."""
        self.page.pop_dialog()
        await self.focus()

    async def dismissed(self, e: ft.Event | None = None) -> None:
        """The dialog is gone: the confirmation, and the composer if the dialog went by Escape
        or a click outside (Flutter gave focus back to the lock button)."""
        self.dialog = None  # a passphrase still being checked says its result under the header
        self.passphrase.value = ""
        if self.confirmation:
            self.note.value, self.note.visible = self.confirmation, True
            if self.note.parent is not None:
                self.note.update()
            self.confirmation = ""
        await self.refocus()

    async def submit(self, e: ft.Event | None = None) -> None:
        await self.set_passphrase(self.passphrase.value or "")

    async def refocus(self) -> None:
        """Back to the composer when the dialog went without ``close`` (Escape, a click
        outside): Flutter gave focus back to the lock button."""
        await self.focus()

    async def set_passphrase(self, passphrase: str) -> bool:
        # The key is derived on another thread (a fraction of a second, longer behind other
        # tabs'): the dialog may go (Escape) or the channel change meanwhile, so what it was
        # for is taken now, and the dialog is closed only if it is still this one.
        channel, dialog, unlock = self.channel, self.dialog, self.unlock
        try:
            await self.backend.set_room_passphrase(channel, passphrase)
        except ValidationError as err:
            if self.dialog is dialog:  # still asking for this room: say why under the field
                self.passphrase.error = str(err)
                if self.passphrase.parent is not None:
                    self.passphrase.update()
            return False
        title = channel_title(channel, self.backend.name)
        done = (f"{title} unlocked: its sealed messages open, and what you send there is sealed."
                if unlock else
                f"{title} is private for you now: what you send there is sealed. Give the "
                "passphrase to the others in person.")
        if dialog is not None and self.dialog is dialog and dialog.open:
            self.passphrase.value = ""
            self.confirmation = done  # shown once the dialog is gone (``dismissed``)
            await self.close()
        else:  # it went while the key was derived: say it under the header now
            self.note.value, self.note.visible = done, True
            if self.note.parent is not None:
                self.note.update()
        await self.on_opened()  # sealed rows open now
        return True

    async def on_event(self, event: object) -> None:
        """Rooms unlocked again on the host after a reconnect (the static client): the open
        channel's rows open again; a room that could not be is said under the header."""
        if not isinstance(event, RoomsUnlocked):
            return
        if event.lost:  # held all the same: nothing is sent there until it is unlocked
            self.note.value = " ".join(
                f"The host could not unlock {channel_title(c, self.backend.name)} again: {why}"
                for c, why in event.lost) + " Unlock it with the lock before writing there."
            self.note.visible = True
            if self.note.parent is not None:
                self.note.update()
        if self.channel in event.channels:
            await self.on_opened()  # its rows, opened again
