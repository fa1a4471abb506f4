"""Network problems where people look (issue 15's doctor, issue 17's UI): the problem banner is
re-read after mount (the node's "nobody found" verdict comes ~30 s after start, when the page is
long drawn), and "Check network" runs the network doctor on demand and shows what it found in
plain words."""

from __future__ import annotations

import asyncio
import logging

import flet as ft

from .backend import ChatBackend
from .banners import Banners
from .updates import Updates, detached

log = logging.getLogger(__name__)
CHECK_NETWORK = "Check network"
CHECKING = "Checking the network (a few seconds)..."
REREAD_SECONDS = 5.0


class NetworkCheck:
    """The "Check network" action and the problem-banner watcher of one page."""

    def __init__(self, page: ft.Page, backend: ChatBackend, banners: Banners,
                 updates: Updates) -> None:
        self.page = page
        self.backend = backend
        self.banners = banners
        self.updates = updates
        self.shown: list[str] = []
        self.result = ft.Text(CHECKING, size=13)
        self.running = False
        self._watch: asyncio.Task[None] | None = None

    def reread(self) -> bool:
        """Show the backend's problems if they changed; True when the banner changed."""
        problems = self.backend.problems()
        if problems == self.shown:
            return False
        self.shown = list(problems)
        self.banners.show_problems(problems)
        self.updates.mark(self.banners.problem)
        return True

    def start(self) -> None:
        """Re-read the problems every few seconds until ``stop`` (one tab, one string
        comparison: nothing per message)."""
        if self._watch is None and not self.updates.closed:
            self._watch = detached(self._rereading())

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    async def _rereading(self) -> None:
        while not self.updates.closed:
            await asyncio.sleep(REREAD_SECONDS)
            try:
                if self.reread():
                    self.updates.flush()
            except Exception:  # a detached task: nobody else would hear of it
                log.exception("re-reading the network problems failed")

    async def click(self, e: ft.Event | None = None) -> None:
        if self.running:
            return
        self.running = True
        self.result.value = CHECKING
        dialog = ft.AlertDialog(
            title=ft.Text("Network check"),
            content=ft.Column([self.result], width=380, tight=True, scroll=ft.ScrollMode.AUTO),
            actions=[ft.TextButton("Close", on_click=lambda e: self.page.pop_dialog())],
        )
        self.page.show_dialog(dialog)
        try:
            self.result.value = await self.backend.check_network()
        except Exception as err:  # the doctor is best effort; say so rather than hang
            log.exception("network check failed")
            self.result.value = f"The network check failed: {err}"
        finally:
            self.running = False
        self.result.update()
        if self.reread():
            self.updates.flush()
