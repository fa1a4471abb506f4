"""Phone layout (issues 14 and 17): under ``NARROW_WIDTH`` the conversation takes the whole
width and the channels panel (channels, "New channel", direct messages) and the people panel
(who is online, devices, "Check network", device details) move into a drawer opened from the
header's menu button, whose badge counts unread messages. From ``NARROW_WIDTH`` up they are
columns beside the conversation again. The same panel controls move; nothing is built twice.
The composer stays the last child of the page, so when the on-screen keyboard shrinks the
viewport it stays right above it."""

from __future__ import annotations

import flet as ft

NARROW_WIDTH = 640
MENU_TOOLTIP = "Channels and people"
DRAWER_WIDTH = 300


class Drawer:
    def __init__(self, page: ft.Page, channels: ft.Control, people: ft.Control,
                 conversation: ft.Control) -> None:
        self.page = page
        self.channels, self.people, self.conversation = channels, people, conversation
        self.wide: bool | None = None
        self.widths = {id(c): getattr(c, "width", None) for c in (channels, people)}
        self.button = ft.IconButton(icon=ft.Icons.MENU, tooltip=MENU_TOOLTIP,
                                    on_click=self.open, visible=False)
        self.body = ft.Row([channels, conversation, people], expand=True,
                           vertical_alignment=ft.CrossAxisAlignment.STRETCH)
        self.holder = ft.Column([], spacing=8)
        # the drawer itself is made the first time the page is narrow: a wide tab never shows
        # it (every mounted control costs each tab's heap, issue 12)
        self.drawer: ft.NavigationDrawer | None = None

    async def open(self, e: ft.Event | None = None) -> None:
        await self.page.show_drawer()

    async def close(self) -> None:
        """After picking a channel or a person in the drawer."""
        if self.wide is False:
            await self.page.close_drawer()

    def set_unread(self, total: int) -> ft.Control:
        self.button.badge = str(total) if total else None
        return self.button

    def fit(self, width: float | None, height: float | None) -> list[ft.Control]:
        """Lay out for this page size; the controls to update."""
        wide = width is None or width >= NARROW_WIDTH
        new_drawer = False
        panels = (self.channels, self.people)
        if wide != self.wide:
            self.wide = wide
            self.button.visible = not wide
            if wide:
                self.holder.controls = []
                self.body.controls = [self.channels, self.conversation, self.people]
            else:
                if self.drawer is None:
                    box = ft.Container(self.holder, padding=8, width=DRAWER_WIDTH)
                    self.drawer = ft.NavigationDrawer(controls=[box])
                    self.page.drawer = self.drawer
                    new_drawer = True
                self.body.controls = [self.conversation]
                self.holder.controls = list(panels)
        for panel in panels:  # in the drawer: full width, each its share of the height
            if isinstance(panel, ft.Container):
                panel.width = self.widths[id(panel)] if wide else None
                panel.height = None if wide or not height else max(220.0, (height - 40) / 2)
        if self.drawer is None:
            return [self.body, self.button]
        if new_drawer:  # not mounted yet: the page's update mounts it
            return [self.body, self.button, self.page]
        return [self.body, self.button, self.drawer]
