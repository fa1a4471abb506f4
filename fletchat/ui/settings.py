"""Profile and settings: display name, theme (light/dark/following the system), alerts, read
receipts and typing signals, and the per-channel mute. ``Prefs`` (``conversation.prefs``) are
remembered per device: a browser in Flet's client storage (``SharedPreferences``), the desktop
and Android window in the data dir (``prefs.json``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import flet as ft

from ..conversation.prefs import STORAGE_KEY, Alerts, Prefs, Theme
from ..model import ValidationError
from .row_menu import action
from .storage import StorageSection

log = logging.getLogger("fletchat.ui")

SETTINGS_TOOLTIP = "Profile and settings"
PREFS_FILE = "prefs.json"  # in the data dir (desktop and Android windows)
THEME_MODES = {Theme.SYSTEM: ft.ThemeMode.SYSTEM, Theme.LIGHT: ft.ThemeMode.LIGHT,
               Theme.DARK: ft.ThemeMode.DARK}
THEME_NAMES = {Theme.SYSTEM: "Follow the system", Theme.LIGHT: "Light", Theme.DARK: "Dark"}
ALERT_NAMES = {Alerts.MENTIONS_AND_DMS: "Mentions and direct messages",
               Alerts.ALL: "Every message", Alerts.NONE: "None"}


class PrefsStore:
    """Loads and saves ``Prefs``: a file when ``path`` is given (desktop, Android), else the
    client's storage (a browser tab); neither (a unit test) keeps them in memory."""

    def __init__(self, path: Path | None = None, client: bool = False) -> None:
        self.path = path
        self.client = client

    async def load(self) -> Prefs:
        try:
            if self.path is not None:
                raw = await asyncio.to_thread(self.path.read_text, "utf-8")
                return Prefs.from_json(raw)
            if self.client:
                return Prefs.from_json(await ft.SharedPreferences().get(STORAGE_KEY))
        except (OSError, RuntimeError, TimeoutError, ValueError) as err:
            log.info("preferences not read (%s): defaults", err)
        return Prefs()

    async def save(self, prefs: Prefs) -> None:
        try:
            if self.path is not None:
                await asyncio.to_thread(_write, self.path, prefs.to_json())
            elif self.client:
                await ft.SharedPreferences().set(STORAGE_KEY, prefs.to_json())
        except (OSError, RuntimeError, TimeoutError) as err:
            log.warning("preferences not saved: %s", err)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


class Settings:
    """The settings dialog and the mute button; ``on_change`` gets every new ``Prefs``."""

    def __init__(self, page: ft.Page, store: PrefsStore,
                 rename: Callable[[str], Awaitable[None]],
                 current_name: Callable[[], str | None],
                 on_change: Callable[[Prefs], Awaitable[None]], backend: Any = None) -> None:
        self.page = page
        self.store = store
        self.rename = rename
        self.current_name = current_name
        self.on_change = on_change
        self.prefs = Prefs()
        self.storage = StorageSection(page, backend, self.change, lambda: self.prefs,
                                      own_device=store.path is not None) \
            if backend is not None else None
        self.name = ft.TextField(label="Display name", on_submit=self.save_name)
        self.button = action(SETTINGS_TOOLTIP, ft.IconButton(
            ft.Icons.SETTINGS_OUTLINED, tooltip=SETTINGS_TOOLTIP, on_click=self.open), self.open)
        self.mute = ft.IconButton(ft.Icons.NOTIFICATIONS_OUTLINED, tooltip="Mute this channel")
        self.mute_button = action("Mute this channel", self.mute, None)  # type: ignore[arg-type]

    async def load(self) -> Prefs:
        self.prefs = await self.store.load()
        self.apply_theme()
        if self.storage is not None:
            self.storage.apply(self.prefs)
        return self.prefs

    def apply_theme(self) -> None:
        self.page.theme_mode = THEME_MODES[self.prefs.theme]

    async def change(self, prefs: Prefs) -> None:
        self.prefs = prefs
        self.apply_theme()
        await self.store.save(prefs)
        await self.on_change(prefs)

    # ---- mute ----
    def show_mute(self, channel: str, on_click: Callable) -> ft.Control:
        """The header's bell for ``channel``; direct messages are never muted."""
        muted = channel in self.prefs.muted
        label = "Unmute this channel" if muted else "Mute this channel"
        self.mute.icon = ft.Icons.NOTIFICATIONS_OFF if muted else ft.Icons.NOTIFICATIONS_OUTLINED
        self.mute.tooltip = label
        self.mute.on_click = on_click
        self.mute_button.label = label
        self.mute_button.on_tap = on_click
        self.mute_button.visible = not channel.startswith("@")
        return self.mute_button

    # ---- the dialog ----
    async def save_name(self, e: ft.Event | None = None) -> None:
        try:
            await self.rename(self.name.value or "")
        except (ValidationError, NotImplementedError) as err:
            self.name.error = str(err) or "Renaming is not available here."
            self.name.helper = None
            self.name.update()
            return
        self.name.error = None
        self.name.helper = f"Done: the others now see you as {self.current_name()}."
        self.name.update()

    def _choice(self, title: str, names: dict, value: object,
                on_pick: Callable[[str], Awaitable[None]]) -> ft.Control:
        async def changed(e: ft.Event) -> None:
            await on_pick(e.control.value)

        return ft.Column([
            ft.Text(title, weight=ft.FontWeight.BOLD),
            ft.RadioGroup(value=str(value), on_change=changed, content=ft.Column(
                [ft.Radio(value=str(k), label=v) for k, v in names.items()], spacing=0)),
        ], spacing=2, tight=True)

    def _switch(self, label: str, value: bool, field: str) -> ft.Control:
        async def changed(e: ft.Event) -> None:
            await self.change(Prefs.from_json({**self.prefs.as_dict(),
                                               field: bool(e.control.value)}))

        return ft.Switch(label=label, value=value, on_change=changed)

    def dialog(self) -> ft.AlertDialog:
        p = self.prefs
        self.name.value, self.name.error, self.name.helper = self.current_name() or "", None, None

        async def theme(v: str) -> None:
            await self.change(Prefs.from_json({**self.prefs.as_dict(), "theme": v}))

        async def alerts(v: str) -> None:
            await self.change(Prefs.from_json({**self.prefs.as_dict(), "alerts": v}))

        return ft.AlertDialog(
            title=ft.Text(SETTINGS_TOOLTIP, size=16),
            content=ft.Column([
                ft.Row([self.name, ft.TextButton("Change name", on_click=self.save_name)]),
                self._choice("Theme", THEME_NAMES, p.theme, theme),
                self._choice("Notify me about", ALERT_NAMES, p.alerts, alerts),
                self._switch("Send read receipts", p.send_read_receipts, "send_read_receipts"),
                self._switch("Show others when I am typing", p.send_typing, "send_typing"),
                *([self.storage.control()] if self.storage is not None and self.storage.shown()
                  else []),
            ], tight=True, spacing=10, width=380, scroll=ft.ScrollMode.AUTO),
            actions=[ft.TextButton("Close", on_click=lambda e: self.page.pop_dialog())],
        )

    async def open(self, e: ft.Event | None = None) -> None:
        self.page.show_dialog(self.dialog())

