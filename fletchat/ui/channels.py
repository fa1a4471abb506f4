"""The channels panel (a column on wide screens, the header's menu on phones): one entry per
channel, unread counts as badges, the current one highlighted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from ..model import ValidationError
from .backend import ChatBackend
from .dialogs import channel_dialog
from .text import channel_label, channel_title

Switch = Callable[[str], Awaitable[None]]


def channel_tile(title: str, unread: int, selected: bool, on_click: Callable,
                 mentions: int = 0, muted: bool = False) -> ft.Control:
    """One entry of the channel list: name, unread count badge ("@" when it mentions this
    person; grey when muted), the current one highlighted."""
    badge = ft.Container(
        content=ft.Text(f"@{unread}" if mentions else str(unread), size=11,
                        color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
        bgcolor=ft.Colors.GREY_500 if muted and not mentions else ft.Colors.RED_600,
        border_radius=10,
        padding=ft.Padding.symmetric(horizontal=7, vertical=1),
        visible=unread > 0,
    )
    return ft.Semantics(
        label=channel_label(title, unread, mentions, muted),
        button=True,
        selected=selected,
        container=True,
        exclude_semantics=True,
        on_tap=on_click,
        content=ft.Container(
            content=ft.Row(
                [
                    ft.Text(
                        title,
                        size=14,
                        weight=ft.FontWeight.BOLD if selected or unread else ft.FontWeight.NORMAL,
                        expand=True,
                        no_wrap=True,
                        overflow=ft.TextOverflow.ELLIPSIS,
                    ),
                    badge,
                ],
                spacing=4,
            ),
            bgcolor=ft.Colors.BLUE_100 if selected else None,
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
        self.list = ft.Column(spacing=2, scroll=ft.ScrollMode.AUTO, expand=True)
        self.menu = ft.PopupMenuButton(icon=ft.Icons.MENU, tooltip="Channels", items=[],
                                       visible=False)
        header = ft.Row(
            [
                ft.Text("Channels", weight=ft.FontWeight.BOLD, expand=True),
                ft.IconButton(icon=ft.Icons.ADD, tooltip="New channel", icon_size=18,
                              on_click=self.new_click),
            ]
        )
        self.panel = ft.Container(
            content=ft.Column([header, self.list], spacing=4, expand=True),
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

    def fit(self, wide: bool) -> None:
        self.panel.visible = self.enabled and wide
        self.menu.visible = self.enabled and not wide

    def _switcher(self, channel: str) -> Callable:
        async def switch(e: ft.Event | None = None) -> None:
            await self.on_switch(channel)

        return switch

    def render(self, channels: list[str], current: str, unread: dict[str, int],
               me: str | None, mentions: dict[str, int] | None = None,
               muted: frozenset[str] = frozenset()) -> list[ft.Control]:
        """Redraw; returns the controls to update."""
        if not self.enabled:
            return []
        tiles, items = [], []
        for channel in channels:
            title = channel_title(channel, me)
            count = unread.get(channel, 0)
            ment = (mentions or {}).get(channel, 0)
            tiles.append(channel_tile(title, count, channel == current, self._switcher(channel),
                                      ment, channel in muted))
            items.append(ft.PopupMenuItem(content=channel_label(title, count, ment, channel in muted),
                                          checked=channel == current,
                                          on_click=self._switcher(channel)))
        self.list.controls = tiles
        self.menu.items = items
        total = sum(unread.values())
        self.menu.badge = str(total) if total else None
        return [self.list, self.menu]
