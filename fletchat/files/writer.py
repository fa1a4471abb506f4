"""One download's chunk writes: in the order the chunks were verified, in batches, on the files
service's threads, with no trip through the event loop between one batch and the next.

In order, because the blob store hashes the whole file as chunks are written
(``wholehash.RunningHash``) and a chunk written ahead of its predecessors waits in memory for
them: writers that each took the store's lock in no particular order held up to 16 MiB a download
that way. Without a trip through the loop, because a writer that went back to a busy loop after
each write (to learn what came next) fell behind the network: 60 MiB of verified chunks waited
in memory on a two-core pair at 166 MB/s. A thread drains the queue while there is something in
it; ``on_written`` hears about each batch on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor

from . import limits as L
from .blobstore import BlobError, BlobStore
from .manifest import FileManifest
from .transfer import Verified

log = logging.getLogger("fletchat.files")

Written = Callable[[list[Verified], Exception | None], None]


class DiskBudget:
    """Bytes of chunks being hashed (``reserve`` .. ``release``) or verified and waiting for the
    disk, for every download of a files service together, on its loop: a reader waits while one
    more chunk would pass ``MAX_UNWRITTEN_BYTES`` (one chunk always fits), so neither many
    holders nor many downloads (up to 68 at once) turn a slow disk into memory."""

    def __init__(self) -> None:
        self.unwritten = 0  # verified, handed to a writer, not yet reported written
        self.reserved = 0  # being hashed by readers
        self.waiting = 0  # readers waiting for room
        self._room = asyncio.Event()  # set when a count fell: waiting readers look again

    async def reserve(self, nbytes: int) -> None:
        """Wait until a chunk of ``nbytes`` fits (or nothing is held), then hold its place until
        ``release``; a chunk that is then verified is counted again by its writer meanwhile."""
        while (self.unwritten or self.reserved) and (
                self.unwritten + self.reserved + nbytes > L.MAX_UNWRITTEN_BYTES):
            self._room.clear()
            self.waiting += 1
            try:
                await self._room.wait()
            finally:
                self.waiting -= 1
        self.reserved += nbytes

    def release(self, nbytes: int) -> None:
        self.reserved -= nbytes
        self._room.set()

    def written(self, nbytes: int) -> None:
        self.unwritten -= nbytes
        self._room.set()


class ChunkWriter:
    def __init__(self, store: BlobStore, manifest: FileManifest, pool: Executor,
                 loop: asyncio.AbstractEventLoop, budget: DiskBudget, on_written: Written) -> None:
        self._store, self._manifest, self._pool = store, manifest, pool
        self._loop, self._budget, self._on_written = loop, budget, on_written
        self._lock = threading.Lock()
        self._queue: list[Verified] = []
        self._draining = False  # a thread is on it (it takes what is queued before it stops)
        self.pending = 0  # chunks added and not yet reported (loop side)

    def add(self, chunk: Verified) -> None:
        """A verified chunk to write (on the loop). ``RuntimeError`` once the pool is shut."""
        self._queued(chunk)
        with self._lock:
            self._queue.append(chunk)
            if self._draining:
                return
            self._draining = True
        try:
            self._pool.submit(self._drain)
        except RuntimeError:
            with self._lock:
                self._draining = False
                self._queue.clear()
            self._done([chunk], None, report=False)
            raise

    def _queued(self, chunk: Verified) -> None:
        self.pending += 1
        self._budget.unwritten += len(chunk.data)

    def _done(self, batch: list[Verified], error: Exception | None, report: bool = True) -> None:
        """On the loop: ``batch`` was written (or failed with ``error``)."""
        self.pending -= len(batch)
        self._budget.written(sum(len(c.data) for c in batch))
        if report:
            self._on_written(batch, error)

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._draining = False
                    return
            error: Exception | None = None
            try:
                self._store.write_chunks(self._manifest,
                                         [(c.index, c.data, c.leaf) for c in batch])
            except (OSError, BlobError) as err:
                error = err
            except Exception as err:  # a bug: still reported (the chunks are fetched again), or
                log.exception("writing chunks failed")  # this writer would stay "draining"
                error = err
            try:
                self._loop.call_soon_threadsafe(self._done, batch, error)
            except RuntimeError:  # the loop closed: the service is gone
                with self._lock:
                    self._queue.clear()
                    self._draining = False
                return
