"""Files in the static web client: the ``ChatBackend`` file methods of ``RelayBackend`` (a mixin).

The bytes never live here for long: a picked file (Flet's picker hands its bytes to Python under
Pyodide) goes to the host in ``chunk`` frames on ``/relay`` (``fletchat/files/relay_frames.py``),
at most ``RELAY_WINDOW`` chunks ahead of the host's acks, and is then shared by the host; what
others shared is shown from the host's ``/files/blob/<sha256>`` route once the host has it (its
``file`` frames say so), and the download button asks the host to fetch it (``fetch``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from fletchat.conversation.relay_frames import RelayDone
from fletchat.files.relay_frames import (
    RELAY_MAX_UPLOAD_BYTES,
    RELAY_WINDOW,
    RelayAck,
    RelayFileState,
    RelaySlot,
    encode_client_chunk,
    encode_client_drop,
    encode_client_fetch,
    encode_client_share,
    encode_client_upload,
    file_key,
)
from fletchat.files.views import FileChanged, FileState, FileView, sealed_digest
from fletchat.model import FileRef, Message, ValidationError, validate_channel

ACK_SECONDS = 30.0  # no ack for this long: the upload failed
MAX_REFS_KEPT = 5000
PICK_INSTEAD = "Use the attach button: the web client sends the files it is given by the picker."
NO_ANSWER = "The host did not answer; try again."


@dataclass
class _Sending:
    acked: int = 0
    error: str = ""
    event: asyncio.Event = field(default_factory=asyncio.Event)


def _room_file_view(ref: FileRef, got: RelayFileState | None) -> FileView:
    """A private room's file: locked unless the host described it under this client's room key
    (``name``); once stored there, its "path" is the token of the link the host made for this
    connection (the tile loads ``/files/opened/<token>``)."""
    if got is None or not got.name:
        return FileView(FileState.SEALED_NO_KEY, 0, ref.size)
    path = PurePosixPath(got.opened) if got.state == FileState.READY and got.opened else None
    return FileView(got.state, got.done, got.size or ref.size, path, None,  # type: ignore[arg-type]
                    got.reason, got.name, got.mime)


class RelayFileMethods:
    """File methods for ``RelayBackend`` (which provides ``client``, ``_ask``, ``deliver``,
    ``name``)."""

    max_bytes = RELAY_MAX_UPLOAD_BYTES  # what ``Attach`` checks before sending
    origin = ""  # the host's "http(s)://host:port", where /files/blob/ is
    client: Any
    _ask: Callable[..., Any]
    deliver: Callable[[object], Any]
    check_sealed: Callable[[str], bool]

    def _files_init(self) -> None:
        self._file_states: dict[str, RelayFileState] = {}
        self._file_refs: dict[str, FileRef] = {}
        self._sending: dict[str, _Sending] = {}

    # ---- what the host has ----
    def learn_files(self, msgs: list[Message]) -> None:
        for msg in msgs:
            for ref in msg.files:
                self._file_refs[file_key(ref.sha256, sealed_digest(ref))] = ref
        while len(self._file_refs) > MAX_REFS_KEPT:
            self._file_refs.pop(next(iter(self._file_refs)))

    def file_view(self, ref: FileRef) -> FileView:
        got = self._file_states.get(file_key(ref.sha256, sealed_digest(ref)))
        if ref.sealed is not None:
            return _room_file_view(ref, got)
        if got is None:
            return FileView(FileState.AVAILABLE_REMOTE, 0, ref.size, name=ref.name, mime=ref.mime)
        # The host serves stored files by hash: the "path" is only the hash, for the tile's URL.
        path = PurePosixPath(ref.sha256) if got.state == FileState.READY else None
        thumb = PurePosixPath(ref.thumb.sha256) if got.thumb and ref.thumb is not None else None
        return FileView(got.state, got.done, got.size or ref.size, path, thumb,  # type: ignore[arg-type]
                        got.reason, ref.name, ref.mime)

    async def on_file_frame(self, frame: RelayFileState | RelaySlot | RelayAck) -> None:
        if isinstance(frame, RelaySlot):
            self.answered(frame.req, frame)  # type: ignore[attr-defined]
            return
        if isinstance(frame, RelayAck):
            sending = self._sending.get(frame.id)
            if sending is not None:
                sending.acked, sending.error = max(sending.acked, frame.received), frame.error
                sending.event.set()
            return
        key = file_key(frame.sha256, frame.of)  # a room's file: the state of that description
        self._file_states[key] = frame
        if len(self._file_states) > MAX_REFS_KEPT:
            self._file_states.pop(next(iter(self._file_states)))
        ref = self._file_refs.get(key)
        if ref is not None:
            await self.deliver(FileChanged(frame.sha256, self.file_view(ref), frame.of))

    async def fetch_file(self, ref: FileRef) -> None:
        done = await self._ask(lambda req: encode_client_fetch(req, ref.sha256, sealed_digest(ref)))
        if not isinstance(done, RelayDone):
            raise ValidationError(NO_ANSWER)
        if done.error:
            raise ValidationError(done.error)

    def files_usage(self) -> tuple[int, int]:
        return (0, 0)  # the host's store is the host owner's business

    def set_auto_download_limit(self, n: int) -> None:
        pass  # the host decides what it downloads by itself

    def auto_download_limit(self) -> int:
        return 0  # the host decides what it downloads by itself

    def free_files_space(self) -> int:
        return 0  # this page keeps no files: the host's store is the host owner's

    def scratch_dir(self) -> None:
        return None  # a browser page keeps no files: it uploads what it picked

    # ---- sending ----
    async def share_files(self, paths, caption: str, channel: str) -> Message:
        raise ValidationError(PICK_INSTEAD)

    async def share_picked(self, picked: list[tuple[str, bytes]], caption: str, channel: str,
                           progress: Callable[[str], None]) -> None:
        """Upload ``(name, bytes)`` pairs to the host and share them as one message."""
        if getattr(self, "name", None) is None:
            raise ValidationError("Join the chat first.")
        channel = validate_channel(channel)
        sealed = self.check_sealed(channel)  # a room's files are sealed by the host
        slots: list[str] = []
        try:
            for name, data in picked:
                if not data:
                    raise ValidationError(f"{name}: the file is empty.")
                if len(data) > RELAY_MAX_UPLOAD_BYTES:
                    raise ValidationError(f"{name}: larger than {RELAY_MAX_UPLOAD_BYTES >> 20} "
                                          "MiB, the largest file the web client can send.")
                slot = await self._ask(lambda req, n=name, d=data: encode_client_upload(
                    req, n, len(d)))
                if not isinstance(slot, RelaySlot):
                    raise ValidationError(NO_ANSWER)
                if slot.error:
                    raise ValidationError(f"{name}: {slot.error}")
                slots.append(slot.id)
                size = len(data)
                await self._send_chunks(slot.id, slot.chunk, data,
                                        lambda n, name=name, size=size: progress(
                                            f"Uploading {name}: {n * 100 // size}%"))
            progress("Sharing...")
            done = await self._ask(lambda req: encode_client_share(req, slots, caption, channel,
                                                                   sealed))
            if not isinstance(done, RelayDone):
                raise ValidationError(NO_ANSWER)
            if done.error:
                raise ValidationError(done.error)
            slots = []  # the host deleted them
        finally:
            for slot_id in slots:
                self.client.send_frame(encode_client_drop(slot_id))

    async def _send_chunks(self, slot: str, chunk: int, data: bytes,
                           progress: Callable[[int], None]) -> None:
        sending = self._sending[slot] = _Sending()
        offset = 0
        try:
            while sending.acked < len(data):
                if sending.error:
                    raise ValidationError(sending.error)
                if offset < len(data) and offset - sending.acked < RELAY_WINDOW * chunk:
                    if not self.client.is_open:
                        raise ValidationError("Lost the connection to the host; try again.")
                    part = data[offset:offset + chunk]
                    self.client.send_frame(encode_client_chunk(slot, offset, part))
                    offset += len(part)
                    continue
                sending.event.clear()
                try:
                    await asyncio.wait_for(sending.event.wait(), ACK_SECONDS)
                except TimeoutError:
                    raise ValidationError("The host stopped taking the file; try again.") from None
                progress(sending.acked)
            if sending.error:
                raise ValidationError(sending.error)
        finally:
            self._sending.pop(slot, None)
