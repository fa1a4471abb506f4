"""``Navigation``: where the person goes on one session's page — another channel, a direct
message, older pages, a search result, the device details. ``ChatView`` builds the components;
this one moves between what they show (it holds no state: ``ChatState`` does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import flet as ft

from ..model import Message, ValidationError
from .device_details import details_dialog

if TYPE_CHECKING:
    from .view import ChatView


class Navigation:
    def __init__(self, view: ChatView) -> None:
        self.view = view  # the components are read when used: some are built after this one
        self.searching = False  # one search at a time per tab (a flood queued everyone's sends)

    # ---- channels, direct messages, details ----
    async def switch_channel(self, channel: str) -> None:
        view = self.view
        await view.drawer.close()
        await view.show_channel(channel)
        if view.feed.needs_room_key():
            await view.rooms.open()
        view.updates.flush()

    def dm_opener(self, name: str) -> Callable:
        async def open_dm(e: ft.Event | None = None) -> None:
            view = self.view
            try:
                channel = view.backend.direct_channel(name)
            except ValidationError as err:
                view.page.show_dialog(ft.SnackBar(ft.Text(str(err))))
                return
            view.state.opened.add(channel)
            await self.switch_channel(channel)

        return open_dm

    async def focus_composer(self, e: ft.Event | None = None) -> None:
        await self.view.composer.focus()

    async def details_click(self, e: ft.Event | None = None) -> None:
        page, backend = self.view.page, self.view.backend
        page.show_dialog(details_dialog(backend.fingerprint, backend.lan_peers(), page.pop_dialog))

    # ---- older pages, search ----
    async def on_scroll(self, e: ft.OnScrollEvent) -> None:
        view = self.view
        view.state.on_scroll(e.pixels)  # the list is reversed: 0 is the newest message
        at_top = e.pixels >= e.max_scroll_extent and (e.scroll_delta or 0) > 0
        if at_top and e.max_scroll_extent > 0 and view.conversation.load_older_button.visible:
            await view.feed.load_older()
        view.updates.flush()

    async def load_older_click(self, e: ft.Event | None = None) -> None:
        await self.view.feed.load_older()
        self.view.updates.flush()

    async def search_submit(self, e: ft.Event | None = None) -> None:
        view = self.view
        query = view.search.query
        if not query or self.searching:  # Enter pressed again while it runs: the same answer
            return
        self.searching = True
        try:
            found = await view.backend.search(query)
        finally:
            self.searching = False
        view.page.show_dialog(view.search.results_dialog(
            query, found, view.backend.name, self.jump_to, view.page.pop_dialog))

    async def jump_to(self, msg: Message) -> None:
        """A search result: its channel, scrolled to and highlighted."""
        view = self.view
        if msg.channel.startswith("@") and view.backend.can_see(msg.channel):
            view.state.opened.add(msg.channel)
        if msg.channel != view.state.channel:  # the open one keeps the pages it has
            await view.show_channel(msg.channel)
            if view.state.channel != msg.channel:
                return  # another channel was opened meanwhile: it is the one shown
        await view.feed.jump_to(msg)
        view.updates.flush()
