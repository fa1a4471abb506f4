"""Files in message rows: images inline, voice notes with a play button, other files as a card.

One ``FileTile`` per attached file, *isolated* (a row's or chunk's update never walks into it) and
registered by hash in ``Attachments``, so a ``FileChanged`` event updates that tile alone: a message
without files costs nothing more, and a download's progress never re-diffs the conversation.

Where the bytes come from: in a browser tab (host mode, or the static client that host mode
serves) the browser fetches a stored file from the host over HTTP (``webpaths.blob_url``): images
as ``<img>``-like sources, downloads as an attachment the browser saves. In the app (desktop,
Android) the file is on this device: thumbnails are passed as bytes, "Save" copies the file where
the person chooses (Flet's save dialog).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import flet as ft
from flet.controls.client_action import ClientAction, action_field

from ..files.views import FileChanged, FileState, FileView
from ..model import FileRef, Message, ValidationError
from ..webpaths import blob_url
from .backend import ChatBackend
from .updates import Isolated, Updates

log = logging.getLogger("fletchat.ui")

THUMB_SIDE = 240  # an inline image at most this wide/high (logical pixels)
LOCKED_LABEL = "a file (locked)"
SEALED_IN_BROWSER = ("A private room's file: this page cannot load it (its host serves no opened "
                     "files); open it in the app.")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
PRUNE_AT = 2000  # tiles remembered before those of rows no longer shown are dropped


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


def duration_text(ms: int | None) -> str:
    seconds = round((ms or 0) / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def is_image(ref: FileRef, view: FileView) -> bool:
    return (view.mime or ref.mime).startswith("image/") and view.state != FileState.SEALED_NO_KEY


def is_voice(ref: FileRef, view: FileView) -> bool:
    return (view.mime or ref.mime).startswith("audio/") and view.state != FileState.SEALED_NO_KEY


def display_name(ref: FileRef, view: FileView) -> str:
    return view.name or ref.name or LOCKED_LABEL


def describe_files(refs: tuple[FileRef, ...], views: list[FileView]) -> str:
    """For the row's screen-reader label: what is attached."""
    parts = []
    for ref, view in zip(refs, views, strict=True):
        if view.state == FileState.SEALED_NO_KEY:
            parts.append(LOCKED_LABEL)
        elif is_voice(ref, view):
            parts.append(f"voice note {duration_text(ref.ms)}" if ref.ms is not None
                         else f"audio {display_name(ref, view)}")
        elif is_image(ref, view):
            parts.append(f"image {display_name(ref, view)}")
        else:
            parts.append(f"file {display_name(ref, view)} ({human_size(view.size or ref.size)})")
    return ", ".join(parts)


def stored_sha(path: Path | None, fallback: str) -> str:
    """The hash a stored file is served under: its blob name (a sealed file's opened copy may be
    stored under its own hash), else the message's."""
    if path is not None and _HEX64.match(path.name):
        return path.name
    return fallback


@dataclass
class OpenInBrowser(ClientAction):
    """``ft.OpenUrl`` bound to the session's own ``UrlLauncher``: ``OpenUrl`` looks the launcher
    up in Flet's current-page context, which a hub event (a row built from pubsub) does not have.
    Runs on the client inside the click's gesture, so the browser does not block it."""

    launcher: ft.UrlLauncher = action_field()  # noqa: RUF009 (Flet's own actions declare fields so)
    url: str = action_field()

    def __post_init__(self) -> None:
        self._bind(self.launcher, "launch_url",
                   {"url": ft.Url(url=self.url, target=ft.UrlTarget.BLANK)})


@dataclass
class TileContext:
    """What every tile of a session shares."""

    backend: ChatBackend
    web: bool  # a browser: bytes come from the host over HTTP
    origin: str  # the host's "http://host:port" (Flet would read a bare "/files/..." as base64)
    updates: Updates
    show_image: Callable[[ft.Control, str], None]  # (full-size control, title)
    play: Callable[[str], Awaitable[None]]  # a voice note's source (URL or local path)
    save: Callable[[Path, str], Awaitable[None]]  # the app: copy a stored file where the person picks
    error: Callable[[str], None]
    launcher: ft.UrlLauncher | None = None  # the session's, for downloads in a browser
    # a host's tab: the URL its session may load an opened private-room file from (``webopened``)
    opened_link: Callable[[Path, str, bool], str] | None = None


class FileTile(Isolated, ft.Container):
    """One attached file; ``show(view)`` redraws it (the tile is updated on its own)."""

    def __init__(self, ref: FileRef, view: FileView, ctx: TileContext, msg_id: str = "") -> None:
        super().__init__(padding=ft.Padding.only(top=4))
        self.ref, self.ctx, self.msg_id = ref, ctx, msg_id
        self.row: object = None  # the row it is in (files_ui sets it)
        self.view = view
        self.show(view)

    def blob_src(self, path: Path, name: str = "", download: bool = False) -> str:
        """Where the browser gets this stored file from the host: a sealed file's opened copy
        only by its session's own link (``sealed_src``), anything else by its hash."""
        if self.ref.sealed is not None:
            return self.sealed_src(path, name, download) or ""
        return self.ctx.origin + blob_url(stored_sha(path, self.ref.sha256), name, download)

    def sealed_src(self, path: Path, name: str = "", download: bool = False) -> str | None:
        if self.ctx.opened_link is None:
            return None
        try:
            return self.ctx.origin + self.ctx.opened_link(path, name, download)
        except ValueError:  # not an opened copy this host serves
            return None

    def _browser_cannot_open(self, view: FileView) -> bool:
        """A tab that cannot load this private room's file (not opened here, or no route)."""
        return (self.ctx.web and self.ref.sealed is not None
                and (view.path is None or self.sealed_src(view.path) is None))

    # ---- what it shows ----
    def show(self, view: FileView) -> None:
        self.view = view
        if view.state == FileState.SEALED_NO_KEY:
            self.content = self._locked()
        elif self._browser_cannot_open(view):
            self.content = self._card(view)
        elif is_image(self.ref, view) and self._image_source(view) is not None:
            self.content = self._image(view)
        elif is_voice(self.ref, view):
            self.content = self._voice(view)
        else:
            self.content = self._card(view)

    def _locked(self) -> ft.Control:
        return ft.Row(
            [ft.Icon(ft.Icons.LOCK_OUTLINE, size=16, color=ft.Colors.ON_SURFACE_VARIANT),
             ft.Text(LOCKED_LABEL, italic=True, color=ft.Colors.ON_SURFACE_VARIANT)],
            spacing=4, tight=True,
            tooltip="Sealed with the room passphrase: enter it (the lock in the header) to see "
                    "the file's name and open it.")

    def _image_source(self, view: FileView) -> str | bytes | None:
        """The thumbnail if there is one here, else the whole image once it is stored."""
        path = view.thumb or view.path
        if path is None:
            return None
        if self.ctx.web and self.ref.sealed is not None:
            return self.sealed_src(path)
        if self.ctx.web:
            sha = stored_sha(path, self.ref.thumb.sha256 if view.thumb and self.ref.thumb
                             else self.ref.sha256)
            return self.ctx.origin + blob_url(sha)
        try:
            return path.read_bytes() if view.thumb is not None else str(path)
        except OSError:
            return None

    def _image(self, view: FileView) -> ft.Control:
        name = display_name(self.ref, view)
        image = ft.Image(src=self._image_source(view) or "", width=THUMB_SIDE, height=THUMB_SIDE,
                         fit=ft.BoxFit.CONTAIN, border_radius=6,
                         error_content=ft.Text(f"image {name}", italic=True))
        # Semantics around the clickable box (not the other way round): a label, a button.
        return ft.Semantics(
            content=ft.Container(image, on_click=self._open_image, width=THUMB_SIDE,
                                 height=THUMB_SIDE, border_radius=6),
            label=f"Image {name}, open full size", button=True, container=True,
            on_tap=self._open_image)

    async def _open_image(self, e: ft.Event | None = None) -> None:
        view = self.view
        name = display_name(self.ref, view)
        if view.path is None:
            await self._fetch()
            return
        src = self.blob_src(view.path, name) if self.ctx.web else str(view.path)
        self.ctx.show_image(ft.Image(src=src, fit=ft.BoxFit.CONTAIN,
                                     semantics_label=f"{name}, full size"), name)

    def _voice(self, view: FileView) -> ft.Control:
        label = (f"Voice note {duration_text(self.ref.ms)}" if self.ref.ms is not None
                 else display_name(self.ref, view))
        ready = view.state == FileState.READY and view.path is not None
        button = ft.IconButton(
            icon=ft.Icons.PLAY_ARROW_ROUNDED if ready else ft.Icons.DOWNLOAD,
            tooltip=f"Play {label}" if ready else f"Download {label}",
            on_click=self._play if ready else self._fetch)
        return ft.Row([ft.Semantics(container=True, content=button),
                       ft.Icon(ft.Icons.MIC, size=16), ft.Text(label),
                       *self._progress(view)], spacing=6, tight=True,
                      vertical_alignment=ft.CrossAxisAlignment.CENTER)

    async def _play(self, e: ft.Event | None = None) -> None:
        path = self.view.path
        if path is None:
            return
        await self.ctx.play(self.blob_src(path) if self.ctx.web else str(path))

    def _card(self, view: FileView) -> ft.Control:
        name = display_name(self.ref, view)
        kind = view.mime or self.ref.mime
        details = ft.Text(f"{human_size(view.size or self.ref.size)} · {kind}", size=11,
                          color=ft.Colors.ON_SURFACE_VARIANT)
        body = ft.Column([ft.Text(name, weight=ft.FontWeight.W_500, max_lines=2,
                                  overflow=ft.TextOverflow.ELLIPSIS), details,
                          *self._progress(view)], spacing=2, tight=True, width=220)
        return ft.Semantics(container=True, content=ft.Container(
            ft.Row([ft.Icon(ft.Icons.INSERT_DRIVE_FILE_OUTLINED, color=ft.Colors.BLUE_GREY_600),
                    body, ft.Semantics(container=True, content=self._action(view, name))],
                   spacing=8, tight=True, vertical_alignment=ft.CrossAxisAlignment.CENTER),
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT), border_radius=8, padding=8))

    def _action(self, view: FileView, name: str) -> ft.Control:
        if view.state == FileState.READY and view.path is not None:
            if self._browser_cannot_open(view):
                return ft.Icon(ft.Icons.LOCK_OPEN, tooltip=SEALED_IN_BROWSER)
            if self.ctx.web:  # the browser saves it: an attachment from the host
                url = self.blob_src(view.path, name, download=True)
                return ft.IconButton(icon=ft.Icons.DOWNLOAD_DONE, tooltip=f"Save {name}",
                                     action=OpenInBrowser(self.ctx.launcher, url))
            return ft.IconButton(icon=ft.Icons.SAVE_ALT, tooltip=f"Save {name}",
                                 on_click=self._save)
        if view.state == FileState.FETCHING:
            return ft.ProgressRing(width=20, height=20, stroke_width=2)
        return ft.IconButton(icon=ft.Icons.DOWNLOAD, tooltip=f"Download {name}",
                             on_click=self._fetch)

    def _progress(self, view: FileView) -> list[ft.Control]:
        if view.state == FileState.FETCHING:
            done = view.done_bytes / view.size if view.size else None
            return [ft.ProgressBar(value=done, width=160),
                    ft.Text(f"{human_size(view.done_bytes)} of {human_size(view.size)}", size=10)]
        if view.state == FileState.WAITING_FOR_HOLDER:
            return [ft.Text(view.reason or "Nobody who has this file is online.", size=11,
                            color=ft.Colors.ORANGE_800)]
        if view.state == FileState.FAILED:
            return [ft.Text(view.reason or "Could not get this file.", size=11,
                            color=ft.Colors.RED_700)]
        return []

    # ---- actions ----
    async def _fetch(self, e: ft.Event | None = None) -> None:
        try:
            await self.ctx.backend.fetch_file(self.ref)
        except ValidationError as err:
            self.ctx.error(str(err))

    async def _save(self, e: ft.Event | None = None) -> None:
        if self.view.path is not None:
            await self.ctx.save(self.view.path, display_name(self.ref, self.view))


class Attachments:
    """The session's file tiles by hash: decorates rows with their files, routes ``FileChanged``
    to the tiles of that file only. ``shown(tile)`` says whether its row is still on screen (a
    channel switch replaces them): tiles of rows that are gone are dropped as they are met."""

    def __init__(self, ctx: TileContext, shown: Callable[[FileTile], bool] = lambda _tile: True) -> None:
        self.ctx = ctx
        self.shown = shown
        self.tiles: dict[str, list[FileTile]] = {}
        self.count = 0

    def prune(self) -> None:
        for sha in list(self.tiles):
            self.tiles[sha] = [t for t in self.tiles[sha] if self.shown(t)]
            if not self.tiles[sha]:
                del self.tiles[sha]
        self.count = sum(len(t) for t in self.tiles.values())

    def controls_for(self, msg: Message) -> tuple[list[ft.Control], str]:
        """Tiles for a message's files, and the words for its screen-reader label."""
        refs: tuple[FileRef, ...] = getattr(msg, "files", ()) or ()
        if not refs or not self.ctx.backend.capabilities.files:
            return [], ""
        views = [self.ctx.backend.file_view(ref) for ref in refs]
        tiles = []
        if self.count > PRUNE_AT:
            self.prune()
        for ref, view in zip(refs, views, strict=True):
            tile = FileTile(ref, view, self.ctx, msg.id)
            self.count += 1
            self.tiles.setdefault(ref.sha256, []).append(tile)
            if ref.thumb is not None:
                self.tiles.setdefault(ref.thumb.sha256, []).append(tile)
            tiles.append(tile)
        return tiles, describe_files(refs, views)

    def changed(self, event: FileChanged) -> None:
        for tile in self.tiles.get(event.sha256, ()):
            if not self.shown(tile):
                continue
            # The event's view is the hub's, with no room keys: a sealed file's view is this
            # session's (its keys); a file no longer kept here has a thumbnail the event lacks.
            own = (event.sha256 == tile.ref.sha256 and tile.ref.sealed is None and not event.of
                   and event.view.state != FileState.AVAILABLE_REMOTE)
            view = event.view if own else self.ctx.backend.file_view(tile.ref)
            tile.show(view)
            self.ctx.updates.mark(tile)


async def copy_to(src: Path, dst: Path) -> None:
    """Save a stored file where the person chose (off the event loop)."""
    await asyncio.to_thread(shutil.copyfile, src, dst)
