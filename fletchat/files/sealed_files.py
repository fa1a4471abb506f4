"""Sealed files of private rooms, for ``FileShare``: sealing a local file on offer, and opening a
downloaded sealed blob for a person who has the room's passphrase.

A sealed description opens only with (room key, channel, message id), so the message each sealed
file came in is remembered (``learn``). Opened copies live in ``files/opened/<blob sha256>``:
named by hash only, like everything else in the store, and bound to the file key that opened them
(``<blob sha256>.key``: a digest of it). The blob's hash is public and the description is not tied
to the blob, so another room's offer could name the same blob with a description of its own: an
opened copy is shown only for a description carrying the same file key (``opened``), which only
someone who could open the original has.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from ..model import FileRef, Message, new_id
from ..rooms import RoomError
from .blobstore import BlobStore, room_on_disk
from .sealed import RoomMessage, SealedMeta, open_meta, seal_stream, unseal_stream
from .views import FileState, FileView

log = logging.getLogger("fletchat.files")

NO_KEY = "A file in a private room: enter the room's passphrase to see it."

OPENED_DIR = "opened"  # under the files root: opened copies, by the sealed blob's hash
BINDING = ".key"  # beside an opened copy: which file key opened it (``_binding``)
MAX_WHERE = 4  # messages remembered per sealed description (the first and the newest)
MAX_METAS = 4096  # opened descriptions kept (each is a name, a type and a file key)


def _binding(file_key: bytes) -> str:
    return hashlib.sha256(b"fletchat opened copy v1\x00" + file_key).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{new_id()}.tmp")
    tmp.write_text(text, "ascii")
    os.replace(tmp, path)


class SealedFiles:
    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.opened_dir = store.root / OPENED_DIR
        self.opened_dir.mkdir(parents=True, exist_ok=True)
        # sealed field -> (channel, message id) of the messages carrying it: the first seen, and
        # the newest few after it. A description opens only under its own message, and the
        # field is public: another message may carry a copy (which must not hide the original)
        self._where: dict[str, list[tuple[str, str]]] = {}
        # sealed field -> a room key that opens it (checked: a wrong key from anyone never
        # replaces the one that works, and never opens a download)
        self._keys: dict[str, bytes] = {}
        # descriptions opened, by (blob, sealed field, room key); bounded, successes only: every
        # key a throw-away relay connection derives would otherwise add one per file it is shown
        self._metas: OrderedDict[tuple[str, str, bytes], SealedMeta] = OrderedDict()
        self._opening: set[str] = set()
        self._bindings: dict[str, str] = {}  # blob sha256 -> its opened copy's binding (read once)

    def learn(self, msg: Message) -> None:
        for ref in msg.files:
            if ref.sealed is not None:
                self._learn_where(ref.sealed, msg.channel, msg.id)

    def _learn_where(self, sealed: str, channel: str, msg_id: str) -> None:
        where = self._where.setdefault(sealed, [])
        if (channel, msg_id) not in where:
            where.append((channel, msg_id))
            if len(where) > MAX_WHERE:
                del where[1]  # the first stays: copies come after the original

    def keep_key(self, ref: FileRef, room_keys: dict[str, bytes] | None) -> None:
        """Remember the room key of ``room_keys`` that opens ``ref`` (to open the blob once it is
        downloaded); a key that does not open it is ignored."""
        found = self._key_and_meta(ref, room_keys)
        if found is not None and ref.sealed is not None:
            self._keys[ref.sealed] = found[0]

    def opened(self, ref: FileRef, meta: SealedMeta) -> Path | None:
        """The opened copy of ``ref``, if the file key of ``meta`` is the one that opened it."""
        path = self.opened_dir / ref.sha256  # a validated digest, never a name
        bound = self._bindings.get(ref.sha256)
        if bound is None:
            try:
                bound = path.with_name(ref.sha256 + BINDING).read_text("ascii")
            except (OSError, UnicodeDecodeError):
                return None
            self._bindings[ref.sha256] = bound
        return path if hmac.compare_digest(bound, _binding(meta.key)) and path.is_file() else None

    def has_opened(self, sha: str) -> bool:
        """An opened copy of blob ``sha`` is here (opened by whichever key)."""
        return (self.opened_dir / sha).is_file()

    def _bind(self, sha: str, meta_key: bytes) -> None:
        bound = _binding(meta_key)
        _write_atomic(self.opened_dir / (sha + BINDING), bound)
        self._bindings[sha] = bound

    def forget(self, sha: str) -> None:
        """The opened copy of ``sha`` goes (freeing space)."""
        self._bindings.pop(sha, None)
        (self.opened_dir / sha).unlink(missing_ok=True)
        (self.opened_dir / (sha + BINDING)).unlink(missing_ok=True)

    def meta(self, ref: FileRef, key: bytes) -> SealedMeta | None:
        cached = (ref.sha256, ref.sealed or "", key)
        meta = self._metas.get(cached)
        if meta is None:
            for channel, msg_id in self._where.get(ref.sealed or "", ()):
                try:
                    meta = open_meta(key, channel, msg_id, ref)
                    break
                except RoomError:
                    continue
            if meta is None:
                return None
            self._metas[cached] = meta
            while len(self._metas) > MAX_METAS:
                self._metas.popitem(last=False)
        self._metas.move_to_end(cached)
        return meta

    def _key_and_meta(self, ref: FileRef, room_keys: dict[str, bytes] | None,
                 ) -> tuple[bytes, SealedMeta] | None:
        """The key of ``room_keys`` that opens ``ref`` (the room of a message carrying it), and
        the description it opens."""
        for channel, _ in self._where.get(ref.sealed or "", ()):
            key = (room_keys or {}).get(channel)
            if key is None:
                continue
            meta = self.meta(ref, key)
            if meta is not None:
                return key, meta
        return None

    def view(self, ref: FileRef, room_keys: dict[str, bytes] | None,
             seen: FileView | None) -> FileView:
        found = self._key_and_meta(ref, room_keys)
        if found is None:
            done = seen.done_bytes if seen is not None else (ref.size if self.store.has(ref.sha256) else 0)
            return FileView(FileState.SEALED_NO_KEY, done, ref.size, reason=NO_KEY)
        key, meta = found
        opened = self.opened(ref, meta)
        if opened is not None:
            return FileView(FileState.READY, meta.size, meta.size, opened, None, "", meta.name, meta.mime)
        if self.store.has(ref.sha256):  # downloaded, not opened yet (opening now)
            self._keys[ref.sealed or ""] = key
            return FileView(FileState.FETCHING, ref.size, ref.size, None, None, "", meta.name, meta.mime)
        if seen is not None:
            return FileView(seen.state, seen.done_bytes, seen.size, None, None, seen.reason,
                            meta.name, meta.mime)
        return FileView(FileState.AVAILABLE_REMOTE, 0, ref.size, None, None, "", meta.name, meta.mime)

    def open_later(self, ref: FileRef, then: Callable[[], None]) -> None:
        """Decrypt a downloaded sealed blob (in a thread) if a key for its room is known here."""
        where = self._where.get(ref.sealed or "")
        key = self._keys.get(ref.sealed or "") if where else None
        if key is None or ref.sha256 in self._opening:
            return
        meta = self.meta(ref, key)
        blob = self.store.path(ref.sha256)
        if meta is None or blob is None or self.opened(ref, meta) is not None:
            return
        self._opening.add(ref.sha256)

        async def run() -> None:
            try:
                await asyncio.to_thread(self._unseal, blob, ref, meta)
                then()
            except (RoomError, OSError) as err:
                log.warning("sealed file %s does not open: %s", ref.sha256[:12], err)
            finally:
                self._opening.discard(ref.sha256)

        asyncio.get_running_loop().create_task(run())

    def _unseal(self, blob: Path, ref: FileRef, meta: SealedMeta) -> None:
        tmp = self.opened_dir / f"{ref.sha256}.{new_id()}.tmp"
        try:
            with open(blob, "rb") as src, open(tmp, "wb") as dst:
                unseal_stream(dst, src, meta, ref.chunk_size)
            os.replace(tmp, self.opened_dir / ref.sha256)
            self._bind(ref.sha256, meta.key)
        finally:
            tmp.unlink(missing_ok=True)

    async def offer(self, path: Path, key: bytes, channel: str, msg_id: str, name: str,
                    mime: str) -> FileRef:
        """Seal ``path`` for (room, message), store the sealed blob; keep an opened copy here."""
        tmp = self.store.root / f"seal-{new_id()}.tmp"
        room_on_disk(self.store.root, 2 * path.stat().st_size)  # the sealed copy, then its blob

        def seal() -> str:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                return seal_stream(dst, src, os.fstat(src.fileno()).st_size,
                                   RoomMessage(key, channel, msg_id), name, mime)

        try:
            sealed = await asyncio.to_thread(seal)
            blob = await self.store.aimport_file(tmp, "sealed", "application/octet-stream")
        finally:
            tmp.unlink(missing_ok=True)
        ref = FileRef(blob.sha256, blob.size, blob.chunk_size, blob.root, sealed=sealed)
        self._learn_where(sealed, channel, msg_id)
        self._keys[sealed] = key
        room_on_disk(self.store.root, ref.size)
        await asyncio.to_thread(shutil.copyfile, path, self.opened_dir / ref.sha256)
        meta = self.meta(ref, key)
        if meta is not None:
            await asyncio.to_thread(self._bind, ref.sha256, meta.key)
        return ref
