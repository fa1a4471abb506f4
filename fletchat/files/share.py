"""File sharing for one hub (``hub.files``): what ``HubBackend`` and the headless peer call.

It offers local files (copied into the blob store, sealed in private rooms), watches the hub's
messages for attached files and downloads them by the auto-download rule (images, thumbnails and
voice notes up to ``AUTO_MEDIA_BYTES`` whatever the setting; other files up to a size the person
sets), queues downloads beyond
``MAX_CONCURRENT_FETCHES``, resumes unfinished ones at start, and publishes ``FileChanged`` on the
hub's event path. The wire and the state machines are ``service``/``lane``; this module only
decides what to fetch and what to show.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import shutil
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..model import FileRef, Message, ValidationError, new_id
from . import limits as L
from .blobstore import BlobError, BlobStore
from .durations import WAV_TYPES, wav_ms
from .manifest import OCTET_STREAM, validate_mime
from .sealed_files import SealedFiles
from .service import BusyError, FileEvent, FilesService
from .views import FileChanged, FileState, FileView, sealed_digest

log = logging.getLogger("fletchat.files")

SCRATCH_DIR = "scratch"  # under the files root: what this device made and has not shared yet

PROGRESS_EVERY_S = 0.25  # progress events per file are coalesced to at most this often
MAX_REFS_PER_BLOB = 4  # descriptions of one blob a download's end is told to (newest kept)
MAX_TOLD_READY = 4096  # stored files remembered as already announced (``_want``)
MAX_QUEUED_FETCHES = 1024  # downloads waiting for a free slot (beyond this, the oldest auto ones go)


def guess_mime(name: str) -> str:
    mime = (mimetypes.guess_type(name)[0] or OCTET_STREAM).lower()
    try:
        return validate_mime(mime)
    except ValidationError:
        return OCTET_STREAM


def auto_wanted(ref: FileRef, limit: int) -> bool:
    """The auto-download rule: images and voice notes up to ``AUTO_MEDIA_BYTES`` (or ``limit`` if
    higher) always; anything else up to ``limit``."""
    if ref.sealed is None and (ref.is_image or ref.is_voice or ref.ms is not None):
        return ref.size <= max(limit, L.AUTO_MEDIA_BYTES)
    return ref.size <= limit


class FileShare:
    """Files for one hub. Thread-safe entry points: ``note`` (hub listener), ``view``,
    ``usage``; the rest runs on the loop given to ``start``."""

    def __init__(self, store: BlobStore, publish: Callable[[object], None], *,
                 auto_limit: int = L.DEFAULT_AUTO_DOWNLOAD_BYTES) -> None:
        self.store = store
        self.publish = publish
        self.auto_limit = auto_limit
        self.service = FilesService(store, on_event=self._on_event)
        self.sealed = SealedFiles(store)
        self._views: dict[str, FileView] = {}  # downloads this run: progress, waiting, failed
        # blob -> its refs by description (``sealed_digest``; "" for the plain one): a download
        # is of the blob, and every message naming it gets its state (a copy naming a room's
        # blob, wanted later, left the room's file never opened)
        self._refs: dict[str, dict[str, FileRef]] = {}
        self._queue: deque[FileRef] = deque()
        self._last_progress: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._used = 0
        self._starting = False
        self._clicked: set[str] = set()  # asked for by a person here (auto ones must leave room)
        # stored files whose readiness was told: another ask (a relay client's fetch, at its
        # frame rate, from any number of connections) tells every screen nothing new
        self._told_ready: OrderedDict[str, None] = OrderedDict()
        shutil.rmtree(store.root / SCRATCH_DIR, ignore_errors=True)  # a crash's, before it was shared

    # ---- lifecycle ----
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.service.start()
        self._used = (await self.store.ausage()).used
        for manifest in await asyncio.to_thread(self.store.partials):  # resume after a restart
            self._want(manifest)

    async def stop(self) -> None:
        await self.service.stop()

    def attach_listener(self, hub: Any) -> None:
        hub.add_listener(lambda event: self.note(event) if isinstance(event, Message) else None)

    # ---- what the hub's messages bring ----
    def note(self, msg: Message) -> None:
        """A message is here (any thread): remember where sealed files belong; auto-download."""
        if not msg.files:
            return
        self.sealed.learn(msg)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._auto, msg.files)

    def note_many(self, msgs: Iterable[Message]) -> None:
        """Messages shown from history (so sealed files in them can be opened)."""
        for msg in msgs:
            if msg.files:
                self.sealed.learn(msg)

    def _auto(self, refs: tuple[FileRef, ...]) -> None:
        for ref in refs:
            if ref.thumb is not None:
                self._want(ref.thumb)
            if auto_wanted(ref, self.auto_limit):
                self._want(ref)

    def set_auto_download_limit(self, n: int) -> None:
        self.auto_limit = max(0, int(n))

    # ---- fetching ----
    async def fetch_ref(self, ref: FileRef, room_keys: dict[str, bytes] | None = None) -> None:
        """The person's download click: fetch now (or queue), then open it if sealed."""
        if room_keys and ref.sealed is not None:
            self.sealed.keep_key(ref, room_keys)
        self._clicked.add(ref.sha256)
        self._want(ref, front=True)

    def _want(self, ref: FileRef, front: bool = False) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:  # downloads run on the loop of start()
            loop.call_soon_threadsafe(self._want, ref, front)
            return
        self._remember(ref)
        if self.store.has(ref.sha256):
            if ref.sha256 not in self._told_ready:  # else every screen knows: nothing new
                self._told_ready[ref.sha256] = None
                while len(self._told_ready) > MAX_TOLD_READY:
                    self._told_ready.popitem(last=False)
                self._ready(ref)
            elif ref.sealed is not None:  # opened (and told) once a key here opens it
                self.sealed.open_later(ref, lambda: self._tell(ref))
            return
        if ref.sha256 in self.service._jobs or any(q.sha256 == ref.sha256 for q in self._queue):
            return
        (self._queue.appendleft if front else self._queue.append)(ref)
        while len(self._queue) > MAX_QUEUED_FETCHES:
            self._queue.pop()
        self._pump()

    def _pump(self) -> None:
        if self._queue and not self._starting and self.service.can_start():
            self._starting = True  # one start at a time: can_start() counts registered jobs
            asyncio.get_running_loop().create_task(self._start(self._queue.popleft()))

    def _leaves_room(self, size: int) -> bool:
        """Whether an auto-download of ``size`` leaves the quota's reserve free (checked when it
        starts: reservations of downloads under way count). One that cannot fit at all goes on,
        so the quota refuses it with its error ("Not enough room …")."""
        u = self.store.usage()
        return u.used + size > u.quota or u.used + size <= u.quota - u.quota // L.AUTO_RESERVE_DIVISOR

    async def _start(self, ref: FileRef) -> None:
        try:
            if ref.sha256 not in self._clicked and not self._leaves_room(ref.size):
                return  # stays available: a click fetches it
            future = await self.service.fetch(ref)
        except BusyError:
            self._queue.appendleft(ref)
            return
        except (BlobError, OSError, ValueError) as err:
            self._set(ref.sha256, FileView(FileState.FAILED, 0, ref.size, reason=str(err)))
            return
        finally:
            self._starting = False
            if self._loop is not None:
                self._loop.call_soon(self._pump)
        if not future.done():
            self._set(ref.sha256, FileView(FileState.FETCHING, 0, ref.size))
        future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)

    def _on_event(self, event: FileEvent) -> None:
        sha = event.sha256
        if event.kind == "progress":
            now = time.monotonic()
            if now - self._last_progress.get(sha, 0.0) < PROGRESS_EVERY_S and event.done_bytes < event.size:
                return
            self._last_progress[sha] = now
            self._set(sha, FileView(FileState.FETCHING, event.done_bytes, event.size))
        elif event.kind == "waiting":  # its slot is free for files others can send
            seen, now = self._views.get(sha), time.monotonic()
            if (seen is not None and seen.state is FileState.WAITING_FOR_HOLDER
                    and now - self._last_progress.get(sha, 0.0) < PROGRESS_EVERY_S):
                return  # chunks from partial holders (the rest still missing): throttled too
            self._last_progress[sha] = now
            self._set(sha, FileView(FileState.WAITING_FOR_HOLDER, event.done_bytes, event.size,
                                    reason=event.reason))
            if self._loop is not None:
                self._loop.call_soon(self._pump)
        elif event.kind == "error":
            log.warning("download of %s failed: %s", sha[:12], event.reason)
            self._set(sha, FileView(FileState.FAILED, 0, event.size, reason=event.reason))
        elif event.kind == "done":
            self._last_progress.pop(sha, None)
            self._views.pop(sha, None)
            for ref in list(self._refs.get(sha, {}).values()):
                self._ready(ref)
        if event.kind in ("done", "error") and self._loop is not None:
            self._loop.call_soon(self._pump)

    def _remember(self, ref: FileRef) -> None:
        refs = self._refs.setdefault(ref.sha256, {})
        of = sealed_digest(ref)
        refs.pop(of, None)  # the newest last
        refs[of] = ref
        while len(refs) > MAX_REFS_PER_BLOB:
            refs.pop(next(iter(refs)))

    def _ready(self, ref: FileRef) -> None:
        if ref.sealed is not None:
            self.sealed.open_later(ref, lambda: self._tell(ref))
        self._tell(ref)

    def _tell(self, ref: FileRef) -> None:
        """Every screen: ``ref``'s state now (for a room's file, of its description)."""
        self.publish(FileChanged(ref.sha256, self.view(ref), sealed_digest(ref)))

    def _set(self, sha: str, view: FileView) -> None:
        self._views[sha] = view
        self.publish(FileChanged(sha, view))

    # ---- what the UI shows ----
    def view(self, ref: FileRef, room_keys: dict[str, bytes] | None = None) -> FileView:
        thumb = self.store.path(ref.thumb.sha256) if ref.thumb is not None else None
        if ref.sealed is not None:
            return self.sealed.view(ref, room_keys, self._views.get(ref.sha256))
        path = self.store.path(ref.sha256)
        if path is not None:
            return FileView(FileState.READY, ref.size, ref.size, path, thumb, "", ref.name, ref.mime)
        seen = self._views.get(ref.sha256)
        if seen is not None:
            return replace(seen, thumb=thumb, name=ref.name, mime=ref.mime)
        return FileView(FileState.AVAILABLE_REMOTE, 0, ref.size, None, thumb, "", ref.name, ref.mime)

    def scratch(self) -> Path:
        """The folder for files this device makes before it shares them (a pasted image, a
        recorded voice note): under the data dir, emptied when the files open (``__init__``), so
        nothing of them is written anywhere else or outlives a crash."""
        folder = self.store.root / SCRATCH_DIR
        folder.mkdir(exist_ok=True)
        return folder

    def usage(self) -> tuple[int, int]:
        u = self.store.usage()
        return u.used, u.quota

    def free_space(self) -> int:
        """The person's "free space": every complete file kept here over ``MAX_THUMB_BYTES`` goes
        (and its opened copy, if it was sealed); thumbnails, which rows show, stay. Rows then
        offer those files for download again, from whoever still has them. The bytes freed."""
        freed = 0
        for sha, size in self.store.complete():
            if size <= L.MAX_THUMB_BYTES:
                continue
            try:
                self.store.remove(sha)
                self.sealed.forget(sha)
            except OSError as err:  # in use elsewhere (Windows), or gone: the others still go
                log.info("free space: %s stays: %s", sha[:12], err)
                continue
            self._views.pop(sha, None)
            self._told_ready.pop(sha, None)
            freed += size
            self.publish(FileChanged(sha, FileView(FileState.AVAILABLE_REMOTE, 0, size)))
        return freed

    # ---- offering local files ----
    async def share(self, session: Any, paths: list[Path], caption: str, channel: str) -> Message:
        """Copy ``paths`` into the store (sealed in a private room) and post one message."""
        if session.name is None:
            raise ValidationError("Join the chat first.")
        if not paths:
            raise ValidationError("Choose at least one file.")
        if len(paths) > L.MAX_FILES_PER_MESSAGE:
            raise ValidationError(f"At most {L.MAX_FILES_PER_MESSAGE} files per message.")
        session.spend()  # a chat message like any other: the person's, address's and device's budget
        msg_id = new_id()
        key = session.room_keys.get(channel)
        refs = []
        for path in paths:
            refs.append(await self._offer(Path(path), key, channel, msg_id))
        text = caption.strip()
        msg = replace(Message.chat(session.name, text, session.hub.peer_id, channel, files=tuple(refs)),
                      id=msg_id)
        if key is not None and msg.text:
            from ..rooms import seal

            msg = replace(msg, text=seal(key, channel, msg_id, msg.text))
        for ref in refs:
            self._remember(ref)
        self.sealed.learn(msg)
        session.typing_ended(channel)  # receivers end this person's typing on it, as on text
        posted = await asyncio.to_thread(session.post_own, msg)
        for ref in refs:
            self._ready(ref)
        return posted

    async def _offer(self, path: Path, key: bytes | None, channel: str, msg_id: str) -> FileRef:
        from .manifest import validate_file_name
        from .thumbs import ImageRefused, amake_thumbnail

        name = validate_file_name(path.name)
        mime = guess_mime(name)
        try:
            size = path.stat().st_size
        except OSError as err:
            raise ValidationError(f"Cannot read {name}: {err.strerror or err}") from err
        if size > L.MAX_FILE_BYTES:
            raise ValidationError(f"{name} is too large ({size} bytes; at most {L.MAX_FILE_BYTES}).")
        try:
            if key is not None:
                return await self.sealed.offer(path, key, channel, msg_id, name, mime)
            ref = await self.store.aimport_file(path, name, mime)
        except BlobError as err:
            raise ValidationError(str(err)) from err
        except OSError as err:
            raise ValidationError(f"Cannot read {name}: {err.strerror or err}") from err
        if mime in WAV_TYPES and (ms := await asyncio.to_thread(wav_ms, path)) is not None:
            ref = replace(ref, ms=ms)  # not for sealed files: their duration would show
        if mime.startswith("image/"):
            try:
                thumb = await amake_thumbnail(path)
                tmp = self.store.root / f"thumb-{new_id()}.tmp"
                await asyncio.to_thread(tmp.write_bytes, thumb.data)
                try:
                    t = await self.store.aimport_file(tmp, "thumbnail", thumb.mime)
                finally:
                    tmp.unlink(missing_ok=True)
                ref = replace(ref, thumb=t)
            except (ImageRefused, BlobError, OSError) as err:
                log.info("no thumbnail for %s: %s", name, err)
        return ref
