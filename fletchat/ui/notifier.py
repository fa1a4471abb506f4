"""Alerts for mentions and direct messages (``notify.should_alert``), per platform:

- desktop (Windows, macOS, Linux): an OS notification through ``desktop-notifier`` when it is
  installed (optional: ``uv pip install desktop-notifier``; maintained, asyncio, no Flutter
  extension needed) and the window is not focused; otherwise the in-app banner.
- browser tabs (host mode, static client) and Android: the in-app banner (a SnackBar naming the
  channel). Flet 1.0.5 has no official notifications package, and the Android one on PyPI
  (``flet-android-notifications``) needs a Flutter build this project cannot make or test.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

import flet as ft

log = logging.getLogger("fletchat.ui")
BANNER_SECONDS = 6


def os_notifier(page: Any) -> Any | None:
    """``desktop_notifier.DesktopNotifier`` on a desktop window when installed, else None."""
    if getattr(page, "web", True) or str(getattr(page, "platform", "")).lower().endswith(
        ("android", "ios")
    ):
        return None
    try:
        module = importlib.import_module("desktop_notifier")
    except ImportError:
        return None
    return module.DesktopNotifier(app_name="Flet Chat")


class Notifier:
    def __init__(self, page: ft.Page) -> None:
        self.page = page
        self.focused = True
        self.os = os_notifier(page)
        self.sent: list[tuple[str, str]] = []  # (title, body) of every alert (tests read it)

    def on_lifecycle(self, state: object) -> None:
        name = str(state).lower()
        if name.endswith(("resume", "show", "focus")):
            self.focused = True
        elif name.endswith(("inactive", "hide", "pause", "blur")):
            self.focused = False

    def alert(self, title: str, body: str) -> None:
        self.sent.append((title, body))
        if self.os is not None and not self.focused:
            asyncio.get_running_loop().create_task(self._os(title, body))
            return
        self.page.show_dialog(ft.SnackBar(ft.Text(f"{title}: {body}", max_lines=2),
                                          duration=ft.Duration(seconds=BANNER_SECONDS)))

    async def _os(self, title: str, body: str) -> None:
        try:
            await self.os.send(title=title, message=body)
        except Exception as err:  # noqa: BLE001 - a desktop without a notification service
            log.info("OS notification failed (%s); showing the banner instead", err)
            self.os = None
            self.alert(title, body)
