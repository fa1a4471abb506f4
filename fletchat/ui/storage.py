"""The settings dialog's "Files on this device": how much room files take here, what downloads by
itself, and freeing the room (issue 13). Only where the session runs on the device that keeps the
files (the desktop and Android app): a host's browser tabs are guests, and what the host keeps and
fetches is its owner's choice (``--auto-download``, ``--files-quota``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import flet as ft

from ..conversation.prefs import AUTO_DOWNLOAD_CHOICES_MB, Prefs
from .attachments import human_size

MB = 1_000_000
AUTO_NAMES = {0: "Only images and voice notes", 5: "Files up to 5 MB", 25: "Files up to 25 MB",
              100: "Files up to 100 MB", 1000: "Files up to 1 GB"}
FREE_LABEL = "Free space"
FREE_HELP = ("Removes the files kept on this device but the small ones (thumbnails among them). "
             "Each can be downloaded again while someone who has it is online; one only you had "
             "is gone for those who have not downloaded it yet.")
assert set(AUTO_NAMES) == set(AUTO_DOWNLOAD_CHOICES_MB)


class StorageSection:
    """Built afresh each time the settings dialog opens (so the figures are current)."""

    def __init__(self, page: ft.Page, backend: Any, save: Callable[[Prefs], Awaitable[None]],
                 prefs: Callable[[], Prefs], own_device: bool) -> None:
        self.page, self.backend, self.save, self.prefs = page, backend, save, prefs
        # Decided by the server, never by what the client says it is (a script on a host's /ws
        # can register as a desktop client): only the app's own window, whose preferences are
        # a file in the data dir, is on the device that keeps the files.
        self.own_device = own_device
        self.usage = ft.Text("", size=12)

    def shown(self) -> bool:
        return (self.own_device and self.backend.capabilities.files
                and self.backend.files_usage()[1] > 0)  # a quota: files are kept here

    def apply(self, prefs: Prefs) -> None:
        """The remembered choice, at start (before it, the device's ``--auto-download``)."""
        if prefs.auto_download_mb is not None and self.shown():
            self.backend.set_auto_download_limit(prefs.auto_download_mb * MB)

    def usage_text(self) -> str:
        used, quota = self.backend.files_usage()
        return f"Files here take {human_size(used)} of the {human_size(quota)} they may use."

    def control(self) -> ft.Control:
        self.usage.value = self.usage_text()
        limit = self.backend.auto_download_limit() // MB
        choice = limit if limit in AUTO_NAMES else None

        async def picked(e: ft.Event) -> None:
            try:
                mb = int(e.control.value)
            except (TypeError, ValueError):
                return
            if mb not in AUTO_NAMES or not self.shown():
                return  # only the offered choices, only where the section is shown
            self.backend.set_auto_download_limit(mb * MB)
            await self.save(Prefs.from_json({**self.prefs().as_dict(), "auto_download_mb": mb}))

        return ft.Column([
            ft.Text("Files on this device", weight=ft.FontWeight.BOLD),
            self.usage,
            ft.Text("Download by themselves", size=12),
            ft.RadioGroup(value=None if choice is None else str(choice), on_change=picked,
                          content=ft.Column([ft.Radio(value=str(k), label=v)
                                             for k, v in AUTO_NAMES.items()], spacing=0)),
            ft.Row([ft.OutlinedButton(FREE_LABEL, icon=ft.Icons.DELETE_SWEEP_OUTLINED,
                                      tooltip=FREE_HELP, on_click=self.free)]),
        ], spacing=2, tight=True)

    async def free(self, e: ft.Event | None = None) -> None:
        if not self.shown():
            return
        freed = self.backend.free_files_space()
        self.usage.value = f"Freed {human_size(freed)}. {self.usage_text()}"
        try:
            self.usage.update()
        except (RuntimeError, AssertionError):  # the dialog closed meanwhile
            pass
