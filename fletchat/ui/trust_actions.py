"""What the people panel and the identity banners do: block (after asking), unblock, and trust a
changed key (docs/security.md). Talks to the backend only through ``ChatBackend``."""

from __future__ import annotations

from collections.abc import Callable

import flet as ft

from ..events import Online
from ..model import ValidationError
from .backend import ChatBackend
from .banners import Banners
from .dialogs import block_dialog
from .people import PeoplePanel
from .text import short_fingerprint
from .updates import Updates


class TrustActions:
    def __init__(self, page: ft.Page, backend: ChatBackend, updates: Updates,
                 banners: Banners, people: PeoplePanel) -> None:
        self.page = page
        self.backend = backend
        self.updates = updates
        self.banners = banners
        self.people = people
        self.block_dialog: ft.AlertDialog | None = None

    def asker(self, device: Online) -> Callable:
        async def ask(e: ft.Event | None = None) -> None:
            self.ask_block(device)

        return ask

    def ask_block(self, device: Online) -> ft.AlertDialog:
        """The confirm dialog before blocking a LAN device."""
        short = short_fingerprint(device.fingerprint)
        who = f"{device.name} ({device.device}{', ' + short if short else ''})"

        async def confirm(e: ft.Event | None = None) -> None:
            self.page.pop_dialog()
            self.block(device.key)

        self.block_dialog = block_dialog(who, confirm, lambda e: self.page.pop_dialog())
        self.page.show_dialog(self.block_dialog)
        return self.block_dialog

    def block(self, peer_id: str) -> None:
        try:
            self.backend.block(peer_id)
        except ValidationError as err:
            self.page.show_dialog(ft.SnackBar(ft.Text(str(err))))
            return
        self.updates.mark(self.people.render_blocked(self.backend.blocked_peers()))

    def unblocker(self, peer_id: str) -> Callable:
        async def unblock(e: ft.Event | None = None) -> None:
            self.backend.unblock(peer_id)
            self.updates.mark(self.people.render_blocked(self.backend.blocked_peers()))

        return unblock

    def truster(self, peer_id: str) -> Callable:
        async def trust(e: ft.Event | None = None) -> None:
            """Reset the key remembered for ``peer_id`` (its next key is trusted on first use)."""
            self.backend.forget_peer(peer_id)
            self.banners.clear_warnings(peer_id)
            self.updates.mark(self.banners.identity)

        return trust
