"""Everything a person sees and does with files in one session, for ``ChatView`` to hook in:
the composer's attach / paste / voice buttons (``upload``, ``voice``), the file tiles of rows
(``attachments``), the full-size image dialog and "save as" in the app."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import flet as ft

from ..files.manifest import export_name
from ..files.views import FileChanged
from ..model import Message
from ..webpaths import opened_url
from .attachments import Attachments, TileContext, copy_to
from .rows import ChatMessage, MessageRow
from .upload import Attach
from .voice import Voice

if TYPE_CHECKING:
    from .view import ChatView


def origin_of(page: ft.Page) -> str:
    """"http(s)://host:port" of the page (a tab of host mode, the static client), or "".
    (Flet's ``page.url`` in host mode is its WebSocket's: ``ws://host:port``.)"""
    try:
        parts = urlsplit(page.url or "")
    except (AttributeError, RuntimeError, ValueError):
        return ""
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}" if scheme in ("http", "https") and parts.netloc else ""


def relay_opened_link(path: Path, name: str, download: bool) -> str:
    """The static client: a room's opened file is reached by the token the host gave this
    connection in its ``file`` frame (the view's "path", ``webclient/files.py``)."""
    return opened_url(path.name, name, download)


class FilesUI:
    def __init__(self, view: ChatView, uploads: Any = None) -> None:
        self.view = view
        page, backend = view.page, view.backend
        self.attach = Attach(page, backend, uploads, self.target, self.sent, self.say)
        self.voice = Voice(page, self.attach)
        # The static client knows its host's origin (``page.url`` is not it under Pyodide).
        origin = getattr(backend, "origin", "") or origin_of(page)
        host_tab = self.attach.web and not self.attach.by_data and uploads is not None
        opened = self._opened_link if host_tab else relay_opened_link if self.attach.by_data else None
        ctx = TileContext(backend, self.attach.web or self.attach.by_data, origin, view.updates,
                          self.show_image, self.voice.play, self.save, self.say,
                          ft.UrlLauncher(), opened)
        self.attachments = Attachments(
            ctx, lambda tile: view.conversation.rows.get(tile.msg_id) is tile.row)

    def _opened_link(self, path: Path, name: str, download: bool) -> str:
        """A host's tab: a link for its session to the opened copy at ``path``."""
        return self.attach.tickets.opened_link(self.attach.owner, path, name, download)

    @property
    def composer_controls(self) -> list[ft.Control]:
        return [*self.attach.controls, *self.voice.controls]

    @property
    def status(self) -> ft.Control:
        return self.attach.status

    def release(self) -> None:
        self.attach.release()

    # ---- rows ----
    def decorate(self, row: MessageRow, msg: Message) -> None:
        """Add a message's files to its row (nothing for a message without files)."""
        if not msg.files:
            return
        tiles, words = self.attachments.controls_for(msg)
        if not tiles or not isinstance(row.row, ChatMessage):
            return
        for tile in tiles:
            tile.row = row
        # Kept on the row: a conversation row redraws its column on every edit, reaction or read
        # receipt (convo_row.dress) and puts these back each time.
        row.file_tiles = list(tiles)
        redraw = getattr(row, "dress", None)
        if redraw is not None:
            redraw()
        else:
            chat = row.row
            chat.lay_out(chat.main, chat.above, [*chat.below, *tiles])
        row.set_extra_label(words)
        row.exclude_semantics = False  # the tiles' buttons are for screen readers too

    def changed(self, event: FileChanged) -> None:
        self.attachments.changed(event)

    # ---- for the composer's buttons ----
    def target(self) -> tuple[str, str]:
        return self.view.state.channel, self.view.composer.text

    async def sent(self, msg: Message | None) -> None:
        view = self.view
        view.composer.sent()  # the caption went with the files
        view.updates.mark(view.composer.field)
        if not view.state.following:
            view.state.follow()
            await view.conversation.back_to_end()
        view.updates.flush()

    def say(self, text: str) -> None:
        self.view.page.show_dialog(ft.SnackBar(ft.Text(text)))

    # ---- for the tiles ----
    def show_image(self, image: ft.Control, title: str) -> None:
        page = self.view.page
        page.show_dialog(ft.AlertDialog(
            title=ft.Text(title, max_lines=1, overflow=ft.TextOverflow.ELLIPSIS),
            content=ft.Container(image, width=min(900, (page.width or 900) - 80),
                                 height=min(700, (page.height or 700) - 200)),
            actions=[ft.TextButton("Close", on_click=lambda e: page.pop_dialog())],
        ))

    async def save(self, path: Path, name: str) -> None:
        """The app: "save as" where the person picks (Flet's dialog), then a copy."""
        try:
            dest = await self.attach.picker.save_file(file_name=export_name(name, path.name))
        except (ValueError, RuntimeError) as err:
            self.say(f"Could not save: {err}")
            return
        if dest:
            await copy_to(path, Path(dest))
            self.say(f"Saved {Path(dest).name}")
