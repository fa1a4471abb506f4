"""The channels panel (a column on wide screens, in the drawer on phones): channels, then direct
messages under their own heading (issue 17), unread counts as badges, a lock on private rooms,
the current one highlighted, and a "New channel" button (a labelled button: the old "+" icon's
tooltip stayed up after the dialog closed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from ..model import ValidationError
from .backend import ChatBackend
from .dialogs import channel_dialog
from .text import channel_label, channel_title

Switch = Callable[[str], Awaitable[None]]


DMS_TITLE = "Direct messages"
NO_DMS = "None yet: click someone under Online to write to them alone."


def channel_tile(title: str, unread: int, selected: bool, on_click: Callable,
                 private: bool = False, mentions: int = 0, muted: bool = False) -> ft.Control:
    """One entry of the channel list: name, unread count badge ("@" when it mentions this
    person; grey when muted), a lock when private, the current one highlighted."""
    # the lock and the badge are there only when shown (tiles are rebuilt on every render; a
    # hidden control still costs each tab's heap, issue 12)
    extras: list[ft.Control] = []
    if private:
        extras.append(ft.Icon(ft.Icons.LOCK, size=13, color=ft.Colors.ON_SURFACE_VARIANT))
    if unread > 0:
        extras.append(ft.Container(
            content=ft.Text(f"@{unread}" if mentions else str(unread), size=11,
                            color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
            bgcolor=ft.Colors.GREY_500 if muted and not mentions else ft.Colors.RED_600,
            border_radius=10,
            padding=ft.Padding.symmetric(horizontal=7, vertical=1),
        ))
    name = ft.Text(
        title,
        size=14,
        weight=ft.FontWeight.BOLD if selected or unread else ft.FontWeight.NORMAL,
        expand=True if extras else None,
        no_wrap=True,
        overflow=ft.TextOverflow.ELLIPSIS,
    )
    return ft.Semantics(
        label=channel_label(title, unread, mentions, muted) + (", private" if private else ""),
        button=True,
        selected=selected,
        container=True,
        exclude_semantics=True,
        on_tap=on_click,
        content=ft.Container(
            content=ft.Row([name, *extras], spacing=4) if extras else name,
            bgcolor=ft.Colors.PRIMARY_CONTAINER if selected else None,
            border_radius=5,
            padding=ft.Padding.symmetric(horizontal=8, vertical=6),
            on_click=on_click,
        ),
    )


class ChannelsPanel:
    """The list, the menu and the "New channel" dialog; ``render`` redraws from the screen's
    state."""

    def __init__(self, page: ft.Page, backend: ChatBackend, on_switch: Switch,
                 on_dismiss: Callable) -> None:
        self.page = page
        self.backend = backend
        self.on_switch = on_switch
        self.on_dismiss = on_dismiss
        self.enabled = backend.capabilities.channels
        self.name = ft.TextField(label="Channel name", prefix="#", autofocus=True,
                                 on_submit=self.create_click)
        self.list = ft.Column(spacing=2, tight=True)
        self.dms = ft.Column(spacing=2, tight=True)
        self.no_dms = ft.Text(NO_DMS, size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.new_button = ft.TextButton("New channel", icon=ft.Icons.ADD, on_click=self.new_click)
        self.panel = ft.Container(
            content=ft.Column(
                [
                    ft.Text("Channels", weight=ft.FontWeight.BOLD),
                    self.list,
                    self.new_button,
                    ft.Text(DMS_TITLE, weight=ft.FontWeight.BOLD),  # (a heading of its own:
                    self.dms,  # the browser tests find it; not a span of "None yet")
                    self.no_dms,
                ],
                spacing=4, expand=True, scroll=ft.ScrollMode.AUTO,
            ),
            width=190,
            padding=8,
            border=ft.Border.all(1, ft.Colors.OUTLINE),
            border_radius=5,
            visible=self.enabled,
        )

    async def new_click(self, e: ft.Event | None = None) -> None:
        self.name.value, self.name.error = "", None
        self.page.show_dialog(channel_dialog(self.name, self.create_click,
                                             lambda e: self.page.pop_dialog(), self.on_dismiss))

    async def create_click(self, e: ft.Event | None = None) -> None:
        try:
            name = self.backend.create_channel(self.name.value or "")
        except ValidationError as err:
            self.name.error = str(err)
            self.name.update()
            return
        self.page.pop_dialog()
        await self.on_switch(name)


    def _switcher(self, channel: str) -> Callable:
        async def switch(e: ft.Event | None = None) -> None:
            await self.on_switch(channel)

        return switch

    def render(self, channels: list[str], current: str, unread: dict[str, int],
               me: str | None, private: frozenset[str] = frozenset(),
               mentions: dict[str, int] | None = None,
               muted: frozenset[str] = frozenset()) -> list[ft.Control]:
        """Redraw; returns the controls to update."""
        if not self.enabled:
            return []
        tiles: list[ft.Control] = []
        dms: list[ft.Control] = []
        for channel in channels:
            count = unread.get(channel, 0)
            ment = (mentions or {}).get(channel, 0)
            tile = channel_tile(channel_title(channel, me), count, channel == current,
                                self._switcher(channel), channel in private, ment,
                                channel in muted)
            (dms if channel.startswith("@") else tiles).append(tile)
        self.list.controls = tiles
        self.dms.controls = dms
        self.no_dms.visible = not dms
        return [self.panel]
