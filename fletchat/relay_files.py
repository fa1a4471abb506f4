"""Files for static clients on host mode's relay (docs/protocol.md, "Files over the relay").

**Uploads.** A static client cannot PUT to the host's upload route from Flet's picker under
Pyodide, and the issue wants one connection, so its files come as ``chunk`` frames on ``/relay``
into a *slot* (``RelayUploads``): a random id bound to that connection and its address, a folder
named by the id under ``<data>/relay-uploads`` and a file name made by ``webfiles.upload_name``
(the client's name is a hint, never a path). The host counts the bytes itself: a chunk must start
where the last ended and may not go past the size the slot was opened for; the type comes from the
cleaned name, never from the client. Quotas hold against many throw-away connections from one
address: slots per connection, per address and on the host, bytes reserved per address and in
total, and a free-space floor checked before every write. A slot idle for ``SLOT_IDLE_S`` or whose
connection closed is deleted. ``share`` hands the complete slots to ``FileShare.share`` (the same
path as a host-mode tab's upload), then deletes them.

**What the host has.** For every message with files a client is sent, and whenever a file of such
a message changes on the host (``FileChanged``), the client gets a ``file`` frame: the host's state
of it; when stored, the browser loads it from ``/files/blob/<sha256>`` (``webfiles.BlobRoute``).
``fetch`` asks the host to download a file, but only one of a message this client was sent.

Writes run in a worker thread; all slot state is touched on the relay's loop alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from .conversation.relay_frames import encode_done
from .files import limits as L
from .files.relay_frames import (
    RELAY_MAX_UPLOAD_BYTES,
    RelayChunk,
    RelayDrop,
    RelayFetch,
    RelayFileState,
    RelayShare,
    RelayUpload,
    encode_ack,
    encode_file_state,
    encode_slot,
    file_key,
)
from .files.views import FileChanged, FileState, sealed_digest
from .model import FileRef, Message, ValidationError
from .protocol import CLOSE_PROTOCOL_ERROR
from .relay_rooms import NOT_UNLOCKED, unsealed
from .webfiles import upload_name
from .webopened import OpenedLinks

log = logging.getLogger("fletchat.relay")

RELAY_UPLOAD_DIR = "relay-uploads"  # under the data dir
MAX_SLOTS = 64  # slots open on the host at once
MAX_SLOTS_PER_CLIENT = L.MAX_FILES_PER_MESSAGE  # per connection: one message's worth
MAX_SLOTS_PER_ADDRESS = 16  # per client address, over all its connections
MAX_BYTES_PER_ADDRESS = 512 * L.MIB  # declared sizes of one address's open slots, together
MAX_BYTES_RESERVED = L.UPLOADS_IN_FLIGHT_BYTES  # declared sizes of every open slot, together
MIN_FREE_BYTES = L.UPLOAD_MIN_FREE_BYTES  # what relay uploads may never take from the file system
SLOT_IDLE_S = 120.0  # a slot with no chunk for this long is deleted ...
SLOT_GRACE_S = 60.0  # ... and one not complete after this long plus its size at
SLOT_MIN_BYTES_PER_S = 64 * L.KIB  # this rate (a byte every 119 s kept a slot forever)
MAX_REFS_PER_CLIENT = 4096  # files a client was told about (what it may fetch); oldest forgotten
MAX_DESCRIPTIONS_PER_BLOB = 4  # of those, naming one blob (room files' descriptions); oldest go
FILES_OFF = "File sharing is off on this host."

Close = tuple[int, str]


class SlotState(StrEnum):
    RECEIVING = "receiving"
    SHARING = "sharing"


@dataclass
class Slot:
    id: str
    owner: int  # the connection (id of its client object)
    address: str
    path: Path
    size: int  # the most it takes (the client's claim, capped)
    touched: float
    received: int = 0
    state: SlotState = SlotState.RECEIVING
    opened: float = 0.0

    def __post_init__(self) -> None:
        self.opened = self.opened or self.touched

    def overdue(self, now: float) -> bool:
        return now - self.opened > SLOT_GRACE_S + self.size / SLOT_MIN_BYTES_PER_S


class ChunkRefused(Exception):
    """A chunk the client had no business sending: the connection closes with this reason."""


class RelayUploads:
    """The relay's upload slots (see the module docstring)."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic,
                 disk_free: Callable[[Path], int] | None = None) -> None:
        self.root = Path(root).resolve()
        self.clock = clock
        self._disk_free = disk_free or (lambda path: shutil.disk_usage(path).free)
        self._slots: dict[str, Slot] = {}
        shutil.rmtree(self.root, ignore_errors=True)  # a crash's leftovers belong to nobody
        self.root.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._slots)

    def _left(self, slots) -> int:
        return sum(s.size - s.received for s in slots)

    def open(self, owner: int, address: str, hint: str, size: int) -> Slot:
        """A slot for one file of at most ``size`` bytes; ``ValidationError`` says why not."""
        self.sweep()
        mine = [s for s in self._slots.values() if s.address == address]
        if size > RELAY_MAX_UPLOAD_BYTES:
            raise ValidationError(f"larger than {RELAY_MAX_UPLOAD_BYTES // L.MIB} MiB, the "
                                  "largest file the web client can send")
        if len(self._slots) >= MAX_SLOTS:
            raise ValidationError("The host is receiving too many files right now; try again.")
        if sum(s.owner == owner for s in mine) >= MAX_SLOTS_PER_CLIENT:
            raise ValidationError(f"At most {MAX_SLOTS_PER_CLIENT} files at once; send these first.")
        if len(mine) >= MAX_SLOTS_PER_ADDRESS or sum(s.size for s in mine) + size > \
                MAX_BYTES_PER_ADDRESS:
            raise ValidationError("This device is sending too much at once; wait for it to finish.")
        if sum(s.size for s in self._slots.values()) + size > MAX_BYTES_RESERVED:
            raise ValidationError("The host is receiving too much at once; try again in a moment.")
        if self._disk_free(self.root) - self._left(self._slots.values()) - size < MIN_FREE_BYTES:
            raise ValidationError("The host's disk is nearly full.")
        slot_id = secrets.token_hex(16)
        folder = self.root / slot_id
        folder.mkdir()
        slot = Slot(slot_id, owner, address, folder / upload_name(hint), size, self.clock())
        self._slots[slot_id] = slot
        return slot

    def get(self, slot_id: str, owner: int) -> Slot | None:
        slot = self._slots.get(slot_id)
        return slot if slot is not None and slot.owner == owner else None

    async def write(self, owner: int, chunk: RelayChunk) -> int:
        """Append a chunk; the bytes stored so far. ``ValidationError``: the slot is gone (the
        client is told); ``ChunkRefused``: the client broke the rules (the connection closes)."""
        slot = self.get(chunk.id, owner)
        if slot is None:
            raise ValidationError("no such upload (it expired or was dropped)")
        if slot.state != SlotState.RECEIVING:
            raise ChunkRefused("chunk: that upload is complete and being shared")
        if chunk.offset != slot.received:
            raise ChunkRefused(f"chunk.offset {chunk.offset}: the host has {slot.received} bytes")
        if slot.received + len(chunk.data) > slot.size:
            raise ChunkRefused(f"chunk: past the {slot.size} bytes the upload was opened for")
        if self._disk_free(self.root) - len(chunk.data) < MIN_FREE_BYTES:
            self.drop(slot.id)
            raise ValidationError("The host's disk is nearly full.")
        slot.touched = self.clock()
        slot.received += len(chunk.data)  # counted before the await: the next chunk checks it
        try:
            await asyncio.to_thread(_append, slot.path, chunk.data)
        except OSError as err:
            log.warning("relay upload %s failed: %s", slot.path.name, err)
            self.drop(slot.id)
            raise ValidationError("the host could not store it") from err
        return slot.received

    def take(self, owner: int, ids: tuple[str, ...]) -> list[Path]:
        """The complete slots ``ids`` for sharing (then ``drop`` them)."""
        slots = [self.get(i, owner) for i in ids]
        if any(s is None for s in slots):
            raise ValidationError("An upload expired or was dropped; attach the file again.")
        for s in slots:
            assert s is not None
            if s.state != SlotState.RECEIVING or s.received != s.size:
                raise ValidationError(f"{s.path.name}: the upload is not complete "
                                      f"({s.received} of {s.size} bytes).")
        for s in slots:
            assert s is not None
            s.state = SlotState.SHARING
        return [s.path for s in slots if s is not None]

    def drop(self, slot_id: str) -> None:
        slot = self._slots.pop(slot_id, None)
        if slot is not None:
            shutil.rmtree(slot.path.parent, ignore_errors=True)

    def drop_owner(self, owner: int) -> None:
        """A connection's unshared slots (one being shared is its share's to drop)."""
        for slot_id in [s.id for s in self._slots.values()
                        if s.owner == owner and s.state == SlotState.RECEIVING]:
            self.drop(slot_id)

    def sweep(self) -> None:
        now = self.clock()
        for slot_id in [s.id for s in self._slots.values() if s.state == SlotState.RECEIVING
                        and (s.touched < now - SLOT_IDLE_S or s.overdue(now))]:
            self.drop(slot_id)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as out:
        out.write(data)


@dataclass
class ClientFiles:
    """What one relay client was told about files (what it may fetch, what to update)."""

    # by ``file_key``: the blob, and for a room's file its description (another message may
    # name the same blob with another description: each is told and fetched as its own)
    refs: OrderedDict[str, FileRef] = field(default_factory=OrderedDict)
    keys_of: dict[str, list[str]] = field(default_factory=dict)  # a blob -> its refs' keys, oldest
    # first (at most MAX_DESCRIPTIONS_PER_BLOB: each is a frame on every change of the blob)
    thumb_of: dict[str, set[str]] = field(default_factory=dict)  # a thumbnail -> files it is of
    owner: str = ""  # whose links to a room's opened files these are (``webopened``)
    closed: bool = False  # the connection ended: no more links for it
    tasks: set[asyncio.Task] = field(default_factory=set)  # fetches: stopped with the connection
    shares: set[asyncio.Task] = field(default_factory=set)  # shares: finished all the same

    def learn(self, ref: FileRef) -> None:
        key = file_key(ref.sha256, sealed_digest(ref))
        self.refs[key] = ref
        self.refs.move_to_end(key)
        keys = self.keys_of.setdefault(ref.sha256, [])
        if key in keys:
            keys.remove(key)
        keys.append(key)
        while len(keys) > MAX_DESCRIPTIONS_PER_BLOB:  # messages naming one blob, many ways
            self._forget(keys[0])
        if ref.thumb is not None:
            self.thumb_of.setdefault(ref.thumb.sha256, set()).add(ref.sha256)
        while len(self.refs) > MAX_REFS_PER_CLIENT:
            self._forget(next(iter(self.refs)))

    def _forget(self, key: str) -> None:
        old = self.refs.pop(key)
        keys = self.keys_of.get(old.sha256, [])
        if key in keys:
            keys.remove(key)
        if not keys:
            self.keys_of.pop(old.sha256, None)
            if old.thumb is not None:
                files = self.thumb_of.get(old.thumb.sha256, set())
                files.discard(old.sha256)
                if not files:
                    self.thumb_of.pop(old.thumb.sha256, None)

    def refs_of(self, sha256: str) -> list[FileRef]:
        """Every ref of blob ``sha256``, and of the files whose thumbnail it is, this client
        knows (a thumbnail's hash may also be a file's: both are told)."""
        shas = [sha256, *sorted(self.thumb_of.get(sha256, set()) - {sha256})]
        return [self.refs[k] for sha in shas for k in self.keys_of.get(sha, ()) if k in self.refs]


class RelayFiles:
    """The relay's file handlers and ``file`` frames; ``session.hub`` gives ``hub.files`` (a
    ``FileShare``, or None when file sharing is off); ``opened`` makes the links a client
    loads a room's opened files from."""

    def __init__(self, uploads: RelayUploads | None, opened: OpenedLinks | None = None) -> None:
        self.uploads = uploads
        self.opened = opened

    def frame_for(self, session: Any, state: ClientFiles, ref: FileRef) -> str:
        """The host's state of ``ref`` for this client. A private room's file is described
        (name, type) only under a room key this client's session holds, and its opened copy is
        reached only by a link made for this connection (``webopened``): the blob route serves
        sealed bytes alone."""
        files = getattr(session.hub, "files", None)
        if files is None:
            return encode_file_state(RelayFileState(ref.sha256, FileState.FAILED, 0, ref.size,
                                                    False, FILES_OFF, of=sealed_digest(ref)))
        view = files.view(ref, session.room_keys if ref.sealed is not None else None)
        reason = view.reason if view.state != FileState.SEALED_NO_KEY else ""
        file = RelayFileState(ref.sha256, view.state, min(view.done_bytes, L.MAX_FILE_BYTES),
                              min(view.size, L.MAX_FILE_BYTES),
                              view.thumb is not None and ref.sealed is None, reason,
                              of=sealed_digest(ref))
        if ref.sealed is not None and view.state != FileState.SEALED_NO_KEY and view.name:
            file = replace(file, name=view.name, mime=view.mime,
                           opened=self._link(state, view.path) if view.state == FileState.READY
                           else "")
        return encode_file_state(file)

    def _link(self, state: ClientFiles, path: Path | None) -> str:
        if self.opened is None or path is None or state.closed:
            return ""
        try:
            return self.opened.link(state.owner, path).rsplit("/", 1)[-1]  # the token
        except ValueError:  # not an opened copy this host serves
            return ""

    def frames_for(self, session: Any, state: ClientFiles, msgs: list[Message]) -> list[str]:
        """``file`` frames for the files of ``msgs`` (which the client is about to be sent)."""
        out = []
        for msg in msgs:
            for ref in msg.files:
                state.learn(ref)
                out.append(self.frame_for(session, state, ref))
        return out

    def changed(self, session: Any, state: ClientFiles, event: FileChanged) -> list[str]:
        return [self.frame_for(session, state, ref) for ref in state.refs_of(event.sha256)]

    # ---- requests ----
    def on_upload(self, frame: RelayUpload, owner: int, address: str, hub: Any) -> str:
        if self.uploads is None or getattr(hub, "files", None) is None:
            return encode_slot(frame.req, error=FILES_OFF)
        try:
            slot = self.uploads.open(owner, address, frame.name, frame.size)
        except ValidationError as err:
            return encode_slot(frame.req, error=str(err))
        return encode_slot(frame.req, slot.id)

    async def on_chunk(self, frame: RelayChunk, owner: int, push: Callable[[str], None],
                       ) -> Close | None:
        if self.uploads is None:
            push(encode_ack(frame.id, 0, FILES_OFF))
            return None
        try:
            received = await self.uploads.write(owner, frame)
        except ChunkRefused as err:
            return CLOSE_PROTOCOL_ERROR, str(err)
        except ValidationError as err:
            push(encode_ack(frame.id, 0, str(err)))
            return None
        push(encode_ack(frame.id, received))
        return None

    def on_drop(self, frame: RelayDrop, owner: int) -> None:
        if self.uploads is not None and self.uploads.get(frame.id, owner) is not None:
            self.uploads.drop(frame.id)

    def on_share(self, frame: RelayShare, owner: int, session: Any, state: ClientFiles,
                 push: Callable[[str], None]) -> Close | None:
        if not session.can_see(frame.channel):
            return CLOSE_PROTOCOL_ERROR, "share.channel: not one of your channels"
        if unsealed(session, frame.channel, frame.sealed):  # the files would go in the clear
            push(encode_done(frame.req, NOT_UNLOCKED))
            return None
        hub = session.hub
        if self.uploads is None or getattr(hub, "files", None) is None:
            push(encode_done(frame.req, FILES_OFF))
            return None
        try:
            paths = self.uploads.take(owner, frame.ids)
        except ValidationError as err:
            push(encode_done(frame.req, str(err)))
            return None
        self._spawn(state.shares, self._share(frame, paths, session, push))
        return None

    async def _share(self, frame: RelayShare, paths: list[Path], session: Any,
                     push: Callable[[str], None]) -> None:
        error = ""
        try:
            await session.hub.files.share(session, paths, frame.caption, frame.channel)
        except ValidationError as err:
            error = str(err)
        except Exception as err:  # the client must hear back whatever went wrong
            log.exception("relay share failed")
            error = f"the host could not share it ({type(err).__name__})"
        finally:
            assert self.uploads is not None
            for slot_id in frame.ids:
                self.uploads.drop(slot_id)
        push(encode_done(frame.req, error))

    def on_fetch(self, frame: RelayFetch, session: Any, state: ClientFiles,
                 push: Callable[[str], None]) -> None:
        files = getattr(session.hub, "files", None)
        ref = state.refs.get(file_key(frame.sha256, frame.of))
        if files is None:
            push(encode_done(frame.req, FILES_OFF))
        elif ref is None:
            push(encode_done(frame.req, "No message you were sent has that file."))
        else:
            self._spawn(state.tasks, self._fetch(files, ref, session.room_keys, frame.req, push))

    async def _fetch(self, files: Any, ref: FileRef, room_keys: dict[str, bytes], req: int,
                     push: Callable[[str], None]) -> None:
        try:
            await files.fetch_ref(ref, room_keys)  # a room's file opens once it is here
        except ValidationError as err:
            push(encode_done(req, str(err)))
            return
        push(encode_done(req))

    @staticmethod
    def _spawn(tasks: set[asyncio.Task], coro) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def closed(self, owner: int, state: ClientFiles) -> set[asyncio.Task]:
        """The connection ended: its fetches stop, its unshared uploads go; the shares it sent
        still running are returned, to finish (the person pressed send: cancelled mid-import,
        the file was stored and charged to the quota with no message pointing at it)."""
        for task in list(state.tasks):
            task.cancel()
        if self.uploads is not None:
            self.uploads.drop_owner(owner)
        state.closed = True  # (a query still answering makes no link after this)
        if self.opened is not None:
            self.opened.release_owner(state.owner)
        return set(state.shares)
