"""Content-addressed file storage under the data dir (``<data>/files``).

Every path here comes from a validated SHA-256 hex digest, never from a file name, so nothing is
written outside the directory whatever a peer calls its file. Layout:

- ``blobs/<sha[:2]>/<sha>``: a complete, verified file; ``<sha>.leaves``: its chunk leaf hashes
  (32 bytes each), from which chunk proofs are served.
- ``partial/<sha>.part``: a download in progress, written at chunk offsets;
  ``partial/<sha>.json``: its manifest; ``partial/<sha>.idx``: the resume journal, one record
  (u32 big-endian index + 32-byte leaf hash) appended per verified chunk. On reopen every journaled
  chunk is read back and checked against its leaf hash, so after a crash the partial file counts
  only chunks that are really on disk and verified.
- Completion checks the whole file's SHA-256 against the manifest, then renames it into
  ``blobs/`` (atomic on one file system). The hash runs while the chunks are written, in index
  order (``wholehash.RunningHash``); only what it could not cover then (chunks that came too far
  ahead, or that were on disk before a restart) is read back at the end.

The quota counts complete blobs plus the full size of every started download (reserved at
``begin``), so parallel downloads cannot overshoot it. The sync methods do blocking I/O and
hashing; the ``a*`` methods run them in a worker thread, so the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import re
import shutil
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import limits as L
from .manifest import FileManifest, chunk_count
from .merkle import HASH_BYTES, MerkleTree, TreeCache, leaf_hash
from .wholehash import MAX_EARLY_BYTES, MAX_EARLY_TOTAL_BYTES, RunningHash

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RECORD = struct.Struct(">I32s")
_READ_BLOCK = 1 * L.MIB
_TREE_CACHE = 16


class BlobError(Exception):
    """A storage failure worth telling the person (quota full, a file that does not match)."""


class QuotaError(BlobError):
    pass


@dataclass(frozen=True)
class Usage:
    used: int  # complete blobs + reserved downloads, bytes
    quota: int
    disk_free: int  # what the file system still has

    @property
    def free(self) -> int:
        """What can still be stored: the smaller of quota left and disk left."""
        return max(0, min(self.quota - self.used, self.disk_free))


def _sha(value: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValueError("not a SHA-256 hex digest")
    return value


def room_on_disk(root: Path, size: int) -> None:
    """``BlobError`` when ``size`` more bytes under ``root`` would take its disk under the
    floor (``L.UPLOAD_MIN_FREE_BYTES``: the history must never meet a full disk)."""
    if (free := shutil.disk_usage(root).free) - size < L.UPLOAD_MIN_FREE_BYTES:
        raise BlobError(
            f"Not enough free disk space for this file: {free // L.MIB} MiB are free and "
            f"{L.UPLOAD_MIN_FREE_BYTES // L.MIB} MiB stay free for the chat history.")


def _remaining(src: BinaryIO) -> int:
    """Bytes left to read in ``src`` when it is a file (0 when that cannot be told)."""
    try:
        return max(0, os.fstat(src.fileno()).st_size - src.tell())
    except (OSError, AttributeError, ValueError):
        return 0


class BlobStore:
    def __init__(self, root: Path, quota: int = L.DEFAULT_QUOTA_BYTES) -> None:
        self.root = Path(root).resolve()
        self.quota = quota
        self._blobs = self.root / "blobs"
        self._partial = self.root / "partial"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file_locks: dict[str, threading.Lock] = {}
        self._trees = TreeCache(_TREE_CACHE)
        self._reserved: dict[str, int] = {}
        self._verified: dict[str, set[int]] = {}
        self._hashes: dict[str, RunningHash] = {}  # downloads begun with no chunk on disk yet
        self._used = sum(size for _sha, size in self.complete())
        for meta in self._partial.glob("*.json"):
            try:
                if self._blob_path(meta.stem).is_file():  # installed, then a crash: counted once
                    for ext in ("part", "idx", "json"):
                        meta.with_suffix(f".{ext}").unlink(missing_ok=True)
                    continue
                self._reserved[meta.stem] = FileManifest.from_wire(json.loads(meta.read_text())).size
            except (ValueError, OSError):
                continue
        self._used += sum(self._reserved.values())

    # ---- paths (only from digests) ----
    def _blob_path(self, sha: str) -> Path:
        return self._blobs / sha[:2] / _sha(sha)

    def _part(self, sha: str, ext: str) -> Path:
        return self._partial / f"{_sha(sha)}.{ext}"

    def _file_lock(self, sha: str) -> threading.Lock:
        with self._lock:
            return self._file_locks.setdefault(sha, threading.Lock())

    # ---- queries ----
    def has(self, sha: str) -> bool:
        return self._blob_path(sha).is_file()

    def path(self, sha: str) -> Path | None:
        """Where a complete file is (for opening or showing it), or None."""
        p = self._blob_path(sha)
        return p if p.is_file() else None

    def layout(self, sha: str) -> tuple[int, int] | None:
        """(size, chunk count) of a complete file, or None if we do not hold it."""
        blob = self._blob_path(sha)
        try:
            return blob.stat().st_size, blob.with_name(sha + ".leaves").stat().st_size // HASH_BYTES
        except OSError:
            return None

    def usage(self) -> Usage:
        with self._lock:
            used = self._used
        return Usage(used, self.quota, shutil.disk_usage(self.root).free)

    def complete(self) -> list[tuple[str, int]]:
        """(sha256, size) of every complete file kept here."""
        return [(blob.name, blob.stat().st_size) for blob in self._blobs.glob("??/*")
                if _HEX64.match(blob.name)]

    def partials(self) -> list[FileManifest]:
        """Downloads that were started and not finished (to resume after a restart)."""
        out = []
        for meta in sorted(self._partial.glob("*.json")):
            try:
                out.append(FileManifest.from_wire(json.loads(meta.read_text())))
            except (ValueError, OSError):
                continue
        return out

    # ---- adding a local file ----
    def import_stream(self, src: BinaryIO, name: str, mime: str,
                      chunk_size: int = L.DEFAULT_CHUNK_SIZE) -> FileManifest:
        """Copy a local file into the store, hashing it on the way (memory stays flat). The
        copy never takes the disk under ``L.UPLOAD_MIN_FREE_BYTES`` free (the history must never
        meet a full disk): checked for the whole file first when its size is known (a browser's
        upload before its second copy is made), and as it grows."""
        tmp = self._partial / f"import-{os.getpid()}-{threading.get_ident()}.tmp"
        whole, leaves, size = hashlib.sha256(), [], 0
        room_on_disk(self.root, _remaining(src))
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = src.read(chunk_size)
                    if not chunk and leaves:
                        break
                    size += len(chunk)
                    if size > L.MAX_FILE_BYTES:
                        raise BlobError(f"File is larger than {L.MAX_FILE_BYTES} bytes.")
                    room_on_disk(self.root, len(chunk))
                    whole.update(chunk)
                    leaves.append(leaf_hash(chunk))
                    out.write(chunk)
                    out.flush()
                    _start_writeback(out.fileno(), size - len(chunk), len(chunk))
                    if len(chunk) < chunk_size:
                        break
                out.flush()
                os.fsync(out.fileno())
            sha = whole.hexdigest()
            manifest = FileManifest(sha, size, chunk_size, MerkleTree(leaves).root.hex(), name, mime)
            assert manifest.chunk_count == len(leaves)
            with self._lock:
                if not self._blob_path(sha).is_file() and self._used + size > self.quota:
                    raise QuotaError(self._quota_text(size))
                if not self._blob_path(sha).is_file():
                    self._used += size
            self._install(tmp, sha, leaves)
            return manifest
        finally:
            tmp.unlink(missing_ok=True)

    def import_file(self, path: Path, name: str, mime: str,
                    chunk_size: int | None = None) -> FileManifest:
        """``chunk_size`` None: the default, or the largest for big files (fewer round trips)."""
        if chunk_size is None:
            big = path.stat().st_size >= L.BIG_FILE_BYTES
            chunk_size = L.MAX_CHUNK_SIZE if big else L.DEFAULT_CHUNK_SIZE
        with open(path, "rb") as src:
            return self.import_stream(src, name, mime, chunk_size)

    def _install(self, tmp: Path, sha: str, leaves: list[bytes]) -> None:
        dest = self._blob_path(sha)
        dest.parent.mkdir(exist_ok=True)
        leaves_tmp = dest.with_name(sha + ".leaves.tmp")
        leaves_tmp.write_bytes(b"".join(leaves))
        os.replace(leaves_tmp, dest.with_name(sha + ".leaves"))
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)

    def _quota_text(self, size: int) -> str:
        return (f"Not enough room for {size} bytes: {self._used} of {self.quota} bytes of the file "
                "quota are in use.")

    # ---- downloading ----
    def begin(self, manifest: FileManifest) -> set[int]:
        """Start or resume a download; returns the chunk indexes already verified on disk.
        Reserves the file's size against the quota (``QuotaError`` if it does not fit)."""
        sha = manifest.sha256
        with self._file_lock(sha):
            if self.has(sha):
                return set(range(manifest.chunk_count))
            with self._lock:
                if sha not in self._reserved:
                    if self._used + manifest.size > self.quota:
                        raise QuotaError(self._quota_text(manifest.size))
                    self._reserved[sha] = manifest.size
                    self._used += manifest.size
            meta = self._part(sha, "json")
            if not meta.exists():
                tmp = meta.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(manifest.to_wire()))
                os.replace(tmp, meta)
            part = self._part(sha, "part")
            if not part.exists():
                with open(part, "wb") as f:
                    f.truncate(manifest.size)
            done = _replay(manifest, part, self._part(sha, "idx"))
            with self._lock:
                self._verified[sha] = done
            if not done:
                self._hashes.setdefault(sha, RunningHash())
            return set(done)

    def write_chunk(self, manifest: FileManifest, index: int, data: bytes | memoryview,
                    leaf: bytes) -> None:
        """Store a chunk the transfer has verified (``leaf`` = its leaf hash), then journal it."""
        self.write_chunks(manifest, [(index, data, leaf)])

    def write_chunks(self, manifest: FileManifest,
                     chunks: Sequence[tuple[int, bytes | memoryview, bytes]]) -> None:
        """Store verified chunks, (index, data, leaf hash), in this order, then journal them: a
        backlog costs one thread hop, one open and one journal append, not one per chunk."""
        sha = manifest.sha256
        spans = [manifest.chunk_span(index) for index, _data, _leaf in chunks]
        for (_offset, length), (_index, data, leaf) in zip(spans, chunks, strict=True):
            if len(data) != length or len(leaf) != HASH_BYTES:
                raise BlobError("chunk has the wrong length")
        with self._file_lock(sha):
            if sha not in self._verified:
                raise BlobError("download was not begun")
            fd = os.open(self._part(sha, "part"), os.O_WRONLY)
            try:
                for (offset, length), (_index, data, _leaf) in zip(spans, chunks, strict=True):
                    _write_fully(fd, data, offset)
                    _start_writeback(fd, offset, length)
            finally:
                os.close(fd)
            _append_records(self._part(sha, "idx"),
                            b"".join(_RECORD.pack(index, leaf) for index, _data, leaf in chunks))
            running = self._hashes.get(sha)
            if running is not None:  # early chunks of all downloads together stay bounded
                with self._lock:
                    others = sum(h.early_bytes for h in self._hashes.values() if h is not running)
                running.max_early = max(0, min(MAX_EARLY_BYTES, MAX_EARLY_TOTAL_BYTES - others))
            for index, data, _leaf in chunks:
                self._verified[sha].add(index)
                if running is not None:
                    running.add(index, data)

    def finish(self, manifest: FileManifest) -> Path:
        """All chunks are in: check the whole file's SHA-256 and move it into place.
        ``BlobError`` (and the partial file is dropped) if it does not match the manifest."""
        sha = manifest.sha256
        with self._file_lock(sha):
            if self.has(sha):
                self._hashes.pop(sha, None)
                return self._blob_path(sha)
            part = self._part(sha, "part")
            leaves: dict[int, bytes] = {}
            raw = self._part(sha, "idx").read_bytes()
            for pos in range(0, len(raw) - len(raw) % _RECORD.size, _RECORD.size):
                index, leaf = _RECORD.unpack_from(raw, pos)
                leaves.setdefault(index, leaf)
            if len(leaves) != manifest.chunk_count:
                raise BlobError(f"{manifest.chunk_count - len(leaves)} chunks are still missing")
            whole = self._hashes.pop(sha, None) or RunningHash()
            with open(part, "rb") as f:  # what the running hash has not covered yet, if anything
                f.seek(min(manifest.size, whole.next_index * manifest.chunk_size))
                while block := f.read(_READ_BLOCK):
                    whole.update_from_disk(block)
                os.fsync(f.fileno())
            if whole.hexdigest() != sha:
                self._drop_partial(sha)
                raise BlobError("The file's chunks all check out but the whole file does not match "
                                "its SHA-256: the offer was wrong. It was discarded.")
            self._install(part, sha, [leaves[i] for i in range(manifest.chunk_count)])
            for ext in ("json", "idx"):
                self._part(sha, ext).unlink(missing_ok=True)
            with self._lock:
                self._reserved.pop(sha, None)
                self._verified.pop(sha, None)
            return self._blob_path(sha)

    def abort(self, sha: str) -> None:
        """Give up a download: its partial file and reservation go."""
        with self._file_lock(sha):
            self._drop_partial(sha)

    def _drop_partial(self, sha: str) -> None:
        for ext in ("part", "json", "idx"):
            self._part(sha, ext).unlink(missing_ok=True)
        with self._lock:
            self._used -= self._reserved.pop(sha, 0)
            self._verified.pop(sha, None)
        self._hashes.pop(sha, None)

    def remove(self, sha: str) -> None:
        blob = self._blob_path(sha)
        with self._file_lock(sha):
            if blob.is_file():
                size = blob.stat().st_size
                blob.unlink()
                blob.with_name(sha + ".leaves").unlink(missing_ok=True)
                with self._lock:
                    self._used -= size
                self._trees.drop(sha)

    # ---- serving ----
    def read_chunk(self, sha: str, index: int, chunk_size: int) -> tuple[bytes, list[bytes]]:
        """Chunk ``index`` of a complete file and its Merkle proof; ``KeyError`` if we lack it."""
        blob = self.path(sha)
        if blob is None:
            raise KeyError(sha)
        size = blob.stat().st_size
        if not 0 <= index < chunk_count(size, chunk_size):
            raise KeyError(index)
        with open(blob, "rb") as f:
            f.seek(index * chunk_size)
            data = f.read(chunk_size)
        return data, self._trees.get(sha, blob.with_name(sha + ".leaves")).proof(index)

    def read_partial(self, sha: str, index: int, offset: int, length: int) -> bytes:
        """Chunk ``index`` of a download in progress, only if it is journaled as verified here;
        ``KeyError`` otherwise. Not under the file's lock (``finish`` holds it for seconds):
        verified bytes never change; a file moved or dropped meanwhile: ``FileNotFoundError``."""
        if index not in self._verified.get(sha, ()):
            raise KeyError(index)
        with open(self._part(sha, "part"), "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise KeyError(index)
        return data

    # ---- off the event loop ----
    async def aimport_file(self, path: Path, name: str, mime: str,
                           chunk_size: int | None = None) -> FileManifest:
        return await asyncio.to_thread(self.import_file, path, name, mime, chunk_size)

    async def ausage(self) -> Usage:
        return await asyncio.to_thread(self.usage)


def _replay(manifest: FileManifest, part_path: Path, idx: Path) -> set[int]:
    """Journal records whose chunk is really on disk and matches; rewrite the journal to them."""
    raw = idx.read_bytes() if idx.exists() else b""
    good: dict[int, bytes] = {}
    with open(part_path, "rb") as part:
        for pos in range(0, len(raw) - len(raw) % _RECORD.size, _RECORD.size):
            index, leaf = _RECORD.unpack_from(raw, pos)
            if index >= manifest.chunk_count or index in good:
                continue
            offset, length = manifest.chunk_span(index)
            part.seek(offset)
            if leaf_hash(part.read(length)) == leaf:
                good[index] = leaf
    tmp = idx.with_suffix(".idx.tmp")
    tmp.write_bytes(b"".join(_RECORD.pack(i, leaf) for i, leaf in sorted(good.items())))
    os.replace(tmp, idx)
    return set(good)


def _write_fully(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``pwrite`` until every byte is written: a short write (a disk filling up) must fail, not
    leave zeros in a chunk that is then journaled as verified."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, "short write")
        view, offset = view[written:], offset + written


def _append_records(path: Path, records: bytes) -> None:
    """Append journal records all or nothing: a write that fails part way is cut off again, or
    every record after it would be read shifted (and the chunks it names are fetched again)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # its only writer holds the file's lock
    try:
        size = os.fstat(fd).st_size
        try:
            _write_fully(fd, records, size)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel write these just-written bytes out now, without waiting for it: file data
    must not pile up as dirty pages, or the next fsync anywhere on the disk (the history
    database's commit after a chat message) waits behind hundreds of MB of writeback (ext4's
    ordered mode flushes it first). ``POSIX_FADV_DONTNEED`` starts that writeback on Linux."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:  # pragma: no cover - Windows, macOS
        return
    try:
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:  # pragma: no cover - a file system without it
        pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
