"""The composer's attach button: pick files (several at once), get them to where the backend can
read them, and share them with the composer's text as caption.

- **The app** (desktop, Android): the picker gives local paths; they go straight to
  ``ChatBackend.share_files``.
- **A browser tab in host mode**: the picker's files are in the browser. Each gets a ticket from
  the host (``webfiles.UploadTickets``: a server-chosen name in its own folder, a size limit the
  route counts itself) and Flet's client PUTs it there; once the host has all of it, the path goes
  to ``share_files`` and the folder is removed. The client's name and size are hints only.
- **The static web client** (Pyodide): there is no server session to PUT to, so the picker hands
  the bytes to Python (``with_data``) and ``tickets`` is the relay backend's uploader
  (``share_picked``, ``webclient/files.py``): the bytes go to the host in chunks over ``/relay``.
- **Paste an image**: the app reads an image from the clipboard (Flet's ``Clipboard.get_image``).
  Not in a browser tab: the image would travel through the session's WebSocket, which host mode
  caps (``host.MAX_WS_MESSAGE_BYTES``), so there the picker is the way.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import flet as ft
from flet.controls.exceptions import FletUnsupportedPlatformException

from ..files.limits import MAX_FILES_PER_MESSAGE
from ..model import Message, ValidationError

log = logging.getLogger("fletchat.ui")

ATTACH_TOOLTIP = "Attach files"
PASTE_TOOLTIP = "Paste an image from the clipboard"
UPLOAD_SECONDS_BASE = 60.0  # an upload may take this long ...
UPLOAD_BYTES_PER_SECOND = 256 * 1024  # ... plus its size at this (slow Wi-Fi) rate
NO_UPLOADS = "Sending files from this page is not available."

# Callbacks into the view: what to send with (channel, caption), and what to do once sent.
Target = Callable[[], tuple[str, str]]
Sent = Callable[[Message | None], Awaitable[None]]
Say = Callable[[str], None]


def upload_timeout(size: int) -> float:
    return UPLOAD_SECONDS_BASE + size / UPLOAD_BYTES_PER_SECOND


class Attach:
    def __init__(self, page: ft.Page, backend: Any, tickets: Any, target: Target, sent: Sent,
                 say: Say) -> None:
        self.page, self.backend, self.tickets = page, backend, tickets
        self.target, self.sent, self.say = target, sent, say
        self.owner = secrets.token_hex(8)  # this session's uploads, released when it closes
        self.address = str(getattr(page, "client_ip", "") or "")  # uploads are capped per device
        # Whether files come through the upload route (or the relay) rather than as paths on this
        # machine. Decided here, never by the client: a script on /ws registering with
        # ``web: false`` made a host take a picker result's "path" and share any file the host
        # could read (its keys, its history). A host (tickets) always uploads; only an app's
        # own window (no tickets, not a browser) gives local paths.
        self.web = tickets is not None or bool(getattr(page, "web", False))
        # The static client: the picker gives bytes, sent over the relay (``share_picked``).
        self.by_data = tickets is not None and hasattr(tickets, "share_picked")
        enabled = backend.capabilities.files and (not self.web or tickets is not None)
        # (a service is a control in every tab: made here only when the attach button uses it)
        self._picker = self._new_picker() if enabled else None
        self.button = ft.IconButton(
            icon=ft.Icons.ATTACH_FILE,
            tooltip=ATTACH_TOOLTIP if enabled else f"{ATTACH_TOOLTIP}: {NO_UPLOADS}",
            disabled=not enabled,
            visible=backend.capabilities.files,
            # Inside the click's gesture on the client: browsers (iOS Safari) refuse a picker
            # opened later, after a round trip to Python.
            action=ft.PickFiles(self.picker, allow_multiple=True, with_data=self.by_data,
                                cancel_upload_on_window_blur=False) if enabled else None,
        )
        self.paste = ft.IconButton(icon=ft.Icons.CONTENT_PASTE, tooltip=PASTE_TOOLTIP,
                                   on_click=self.paste_image,
                                   visible=backend.capabilities.files and not self.web
                                   and not self.by_data)
        self.clipboard = ft.Clipboard() if not self.web and not self.by_data else None
        self.status = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.busy = False

    def _new_picker(self) -> ft.FilePicker:
        return ft.FilePicker(on_result=self.picked, on_upload=self.uploading)

    @property
    def picker(self) -> ft.FilePicker:
        if self._picker is None:
            self._picker = self._new_picker()
        return self._picker

    @property
    def controls(self) -> list[ft.Control]:
        """Only the buttons this session can ever show (a hidden control still costs each
        tab's heap, issue 12)."""
        return [c for c in (self.button, self.paste) if c.visible]

    def release(self) -> None:
        """The session closed: its unshared uploads go."""
        if self.tickets is not None and not self.by_data:  # the relay's slots go with its socket
            self.tickets.release_owner(self.owner)

    def show_status(self, text: str) -> None:
        self.status.value, self.status.visible = text, bool(text)
        try:
            self.status.update()
        except (RuntimeError, AssertionError):
            pass

    # ---- picking and uploading ----
    async def picked(self, e: ft.FilePickerResultEvent) -> None:
        files = list(e.files or [])
        if not files or self.busy:
            return
        if len(files) > MAX_FILES_PER_MESSAGE:
            self.say(f"At most {MAX_FILES_PER_MESSAGE} files per message.")
            return
        self.busy = True
        try:
            if self.by_data:
                await self._send_data(files)
            elif self.web:
                await self._upload_and_share(files)
            else:
                paths = [Path(f.path) for f in files if f.path]
                if len(paths) != len(files):
                    self.say("This device did not give the picked files' location; try again.")
                    return
                await self.share(paths)
        finally:
            self.busy = False
            self.show_status("")

    async def _upload_and_share(self, files: list[ft.FilePickerFile]) -> None:
        tickets = []
        try:
            for f in files:
                if f.size is not None and f.size > self.tickets.max_bytes:
                    raise ValidationError(
                        f"{f.name}: larger than {self.tickets.max_bytes // 2**20} MiB, the "
                        "largest file a browser can send here.")
                tickets.append(self.tickets.issue(self.owner, f.name, self.address))
            self.show_status(f"Uploading {len(files)} file{'s' if len(files) > 1 else ''}...")
            await self.picker.upload([
                ft.FilePickerUploadFile(upload_url=t.url, method="PUT", id=f.id, name=f.name)
                for f, t in zip(files, tickets, strict=True)])
            paths = await asyncio.gather(*(
                self.tickets.wait(t, upload_timeout(f.size or 0))
                for f, t in zip(files, tickets, strict=True)))
            await self.share(list(paths))
        except ValidationError as err:
            self.say(str(err))
        finally:
            for t in tickets:
                self.tickets.release(t.token)

    async def _send_data(self, files: list[ft.FilePickerFile]) -> None:
        picked = []
        for f in files:
            if f.bytes is None:
                self.say(f"The browser did not hand over {f.name}; try again.")
                return
            if len(f.bytes) > self.tickets.max_bytes:
                self.say(f"{f.name}: larger than {self.tickets.max_bytes // 2**20} MiB, the "
                         "largest file this page can send.")
                return
            picked.append((f.name, bytes(f.bytes)))
        channel, caption = self.target()
        try:
            await self.tickets.share_picked(picked, caption, channel, self.show_status)
        except ValidationError as err:
            self.say(str(err))
            return
        await self.sent(None)  # the host's message arrives like every other

    async def uploading(self, e: ft.FilePickerUploadEvent) -> None:
        if e.error:
            self.show_status(f"{e.file_name}: {e.error}")
        elif e.progress is not None and e.progress < 1:
            self.show_status(f"Uploading {e.file_name}: {e.progress:.0%}")

    async def share(self, paths: list[Path]) -> None:
        channel, caption = self.target()
        self.show_status("Sharing...")
        try:
            msg = await self.backend.share_files(paths, caption, channel)
        except ValidationError as err:
            self.say(str(err))
            return
        finally:
            self.show_status("")
        await self.sent(msg)

    # ---- paste (the app only) ----
    async def paste_image(self, e: ft.Event | None = None) -> None:
        if self.clipboard is None:
            return
        try:
            data = await self.clipboard.get_image()
        except (FletUnsupportedPlatformException, RuntimeError, TimeoutError) as err:
            self.say(f"Could not read the clipboard: {err}")
            return
        if not data:
            self.say("There is no image on the clipboard.")
            return
        folder = self.backend.scratch_dir()
        if folder is None:
            self.say("Pasting needs a data folder, and file sharing is off here.")
            return
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"pasted-image-{stamp}-{secrets.token_hex(4)}.png"
        try:
            await asyncio.to_thread(path.write_bytes, data)
            await self.share([path])  # copied into the store: the pasted file is not kept
        finally:
            path.unlink(missing_ok=True)
