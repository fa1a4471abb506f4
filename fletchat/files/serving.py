"""The serving side of the files service: answering ``get`` with chunks of complete files or of
downloads in progress (their verified chunks, with the proofs they came with), refusing the
rest, and dropping a peer the server judged. Mixed into ``service.FilesService``, which owns the
links, the thread pool and the server state machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from ..aio import after as in_turn
from . import frames as F
from . import limits as L
from .blobstore import BlobStore
from .manifest import chunk_count
from .serve import Refuse, Serve, Server
from .swarm import Swarm
from .transfer import Drop


def chunk_frame(store: BlobStore, sha: str, index: int, chunk: int,
            partial: tuple[tuple[int, int], tuple[bytes, ...]] | None) -> bytes:
    """Read a chunk and encode its frame, in one worker thread hop: the frame is a fresh
    1 MiB buffer, and building it on the loop showed in a profile of the sender's loop
    (about 3 ms a chunk, wall clock, at load 20). ``partial``: (offset, length) and proof of
    a chunk of a download in progress (if that download completed meanwhile, the complete
    file is read)."""
    data: bytes | None = None
    if partial is not None:
        (offset, length), proof = partial
        with contextlib.suppress(KeyError, FileNotFoundError):
            data = store.read_partial(sha, index, offset, length)
    if data is None:
        data, proof = store.read_chunk(sha, index, chunk)
    frame = F.encode(F.Chunk(sha, index, tuple(proof), data))
    assert isinstance(frame, bytes)
    return frame


class Layouts:
    """(size, chunk count) of complete files served: a complete file never changes, so one disk
    look per file, not per chunk."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[int, int]] = {}

    def add(self, sha: str, layout: tuple[int, int]) -> None:
        if len(self.known) >= 256:
            self.known.clear()
        self.known[sha] = layout

    def length(self, get: F.Get) -> int | None:
        size, count = self.known[get.sha256]
        if chunk_count(size, get.chunk_size) != count or get.index >= count:
            return None
        return min(get.chunk_size, size - get.index * get.chunk_size)


class ServingMethods:
    """Mixed into ``FilesService``: ``get`` frames in, chunk frames or refusals out."""

    store: BlobStore
    server: Server
    swarm: Swarm
    _links: dict[str, Any]
    _asked: dict[tuple[str, str, int], int]  # queued Get -> its chunk size
    _layouts: Layouts
    _nudge: asyncio.Future[None] | None
    _last_serve: dict[tuple[str, str], asyncio.Task]  # per (peer, file): the answer that goes out last

    async def _off_loop(self, fn: Callable, *args) -> Any: ...
    async def _send(self, peer: str, frame: F.FilesFrame) -> None: ...
    async def _close(self, peer: str, code: int, reason: str) -> None: ...
    def _spawn(self, coro: Coroutine) -> asyncio.Task: ...

    async def _on_get(self, peer: str, frame: F.Get, now: float) -> None:
        length = await self._length(frame)
        if length is not None:
            self._asked[(peer, frame.sha256, frame.index)] = frame.chunk_size
        await self._serve(self.server.on_request(peer, frame.sha256, frame.index, length, now))
        if self._nudge is not None and not self._nudge.done():
            self._nudge.set_result(None)

    def _served(self, key: tuple[str, str], task: asyncio.Task) -> None:
        if self._last_serve.get(key) is task:
            del self._last_serve[key]

    async def _length(self, get: F.Get) -> int | None:
        """The requested chunk's length if we hold it with that chunk size (the whole file, or
        that chunk verified and written in a download in progress), else None."""
        span = self.swarm.span(get.sha256, get.index, get.chunk_size)
        if span is not None:
            return span[1]
        if get.sha256 not in self._layouts.known:
            layout = await self._off_loop(self.store.layout, get.sha256)
            if layout is None:
                return None
            self._layouts.add(get.sha256, layout)
        return self._layouts.length(get)

    async def _serve_one(self, ev: Serve, chunk: int, after: asyncio.Task | None,
                         link: Any) -> None:
        """Read and send one chunk. Chunks are read in parallel threads but a file's go out in
        the order they were asked for (``after``: the answer before this one, of the same file to
        the same peer): answered as they came off the threads, a one-holder download's chunks
        arrived out of order, and the receiver held up to 16 MiB of early chunks for its running
        hash (``wholehash``). Per file, so one slow read holds back no other file's answers."""
        span = self.swarm.span(ev.sha256, ev.index, chunk)
        proof = self.swarm.proof(ev.sha256, ev.index)
        partial = (span, proof) if span is not None and proof is not None else None
        try:
            frame = await self._off_loop(chunk_frame, self.store, ev.sha256, ev.index, chunk, partial)
        except (KeyError, OSError):
            frame = F.encode(F.NoChunk(ev.sha256, ev.index, "not_found"))
        await in_turn(after)
        if link is not None and self._links.get(ev.peer) is link:
            await link.send(frame)

    async def _serve(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, Serve):
                chunk = self._asked.pop((ev.peer, ev.sha256, ev.index), L.DEFAULT_CHUNK_SIZE)
                key = (ev.peer, ev.sha256)
                task = self._spawn(self._serve_one(  # answered on the connection that asked
                    ev, chunk, self._last_serve.get(key), self._links.get(ev.peer)))
                self._last_serve[key] = task
                task.add_done_callback(lambda t, key=key: self._served(key, t))
            elif isinstance(ev, Refuse):
                await self._send(ev.peer, F.NoChunk(ev.sha256, ev.index, ev.reason))
            elif isinstance(ev, Drop):
                await self._close(ev.peer, 1008, str(ev.verdict))
