"""The thin asyncio layer around ``transfer.Fetch``, ``serve.Server`` and ``BlobStore``: what the mesh
plugs a files connection into. It decides nothing a unit test of the state machines does not see;
it moves frames, runs disk work off the loop, and keeps the timers.

The mesh calls ``attach(peer, link)`` when a files connection to ``peer`` is open (after the
handshake), ``on_frame(peer, raw)`` for each frame received on it, and ``detach(peer)`` when it
closes. ``link`` is anything with ``async send(frame)`` and ``async close(code, reason)``. The app
calls ``fetch(manifest, holders)`` and gets ``FileEvent``s through ``on_event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import frames as F
from . import limits as L
from .blobstore import BlobError, BlobStore
from .manifest import FileManifest
from .merkle import leaf_hash
from .serve import Server
from .serving import Layouts, ServingMethods
from .swarm import Swarm
from .transfer import Complete, Drop, Fetch, FetchState, HoldersGone, Request, Verified
from .writer import ChunkWriter, DiskBudget

HASH_IN_THREAD_BYTES = 64 * L.KIB  # chunks from this size on are hashed in a worker thread
# Chunk reads, hashes and writes run on threads of their own, not asyncio's default executor: the
# chat path uses that one (storing a received message, sending a typed one), and with 16 chunk
# requests in flight per holder its queue filled with chunk work that chat waited behind.
ANNOUNCE_S = 0.1  # newly verified chunks are announced to other fetchers at most this often
FILE_THREADS = 6  # as many as asyncio's default on 2 cores; 2 measured slower (chunk hashes queued behind writes)
NOBODY = "Nobody who has this file is online."  # a download waits for a holder of the rest

log = logging.getLogger("fletchat.files")


class BusyError(BlobError):
    """``MAX_CONCURRENT_FETCHES`` files are already being fetched (the caller queues this one)."""


class Link(Protocol):
    async def send(self, frame: str | bytes) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class FileEvent:
    """For the UI and the headless peer: ``kind`` is ``progress``, ``done`` (``path`` set),
    ``waiting`` (all holders gone) or ``error`` (``reason`` set)."""

    kind: str
    sha256: str
    done_bytes: int = 0
    size: int = 0
    path: Path | None = None
    reason: str = ""


class _Job:
    def __init__(self, fetch: Fetch, writer: Callable[[_Job], ChunkWriter]) -> None:
        self.fetch = fetch
        self.writer = writer(self)  # writes verified chunks, in the order verified
        self.complete = False
        self.finishing = False
        self.on_disk = len(fetch.verified)  # chunks verified before this run (resume)
        self.received = 0  # chunk frames received this run (re-sent ones included)
        self.by_peer: dict[str, int] = {}  # ... per holder (multi-source)
        self.result: asyncio.Future[Path] = asyncio.get_running_loop().create_future()


class _Bucket:
    def __init__(self, now: float) -> None:
        self.tokens, self.at = float(L.FILES_LANE_BURST), now

    def take(self, now: float) -> bool:
        self.tokens = min(L.FILES_LANE_BURST, self.tokens + (now - self.at) * L.FILES_LANE_FRAMES_PER_SECOND)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FilesService(ServingMethods):
    def __init__(self, store: BlobStore, *, server: Server | None = None,
                 on_event: Callable[[FileEvent], None] = lambda e: None,
                 clock: Callable[[], float] = time.monotonic, tick_s: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.server = server or Server()
        self.on_event = on_event
        self._clock = clock
        self._tick_s = tick_s
        self._links: dict[str, Link] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._jobs: dict[str, _Job] = {}
        self._asked: dict[tuple[str, str, int], int] = {}  # queued Get -> its chunk size
        self._layouts = Layouts()
        self._work: set[asyncio.Task] = set()  # chunk reads and writes in progress
        self._last_serve: dict[tuple[str, str], asyncio.Task] = {}
        self._stopping = False
        self.budget = DiskBudget()  # chunks being hashed or waiting for the disk, all downloads
        self._nudge: asyncio.Future[None] | None = None  # resolved to wake the timer loop early
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="fletchat-files")
        self.swarm = Swarm(rng or random.Random())  # chunks of downloads in progress that we serve
        self.me = ""  # our peer id (set by the files lane): ranks us among fellow fetchers

    async def _off_loop(self, fn: Callable, *args):
        """``fn(*args)`` on the files lane's own threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    # ---- lifecycle ----
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._timers())

    async def stop(self) -> None:
        self._stopping = True  # writer threads still draining report to nobody
        for task in list(self._work):
            task.cancel()
        await asyncio.gather(*self._work, return_exceptions=True)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False)

    async def _timers(self) -> None:
        """Chunk timeouts and the serving budget's refills."""
        while True:
            now = self._clock()
            ready = self.server.next_ready(now)
            delay = self._tick_s if ready is None else min(self._tick_s, max(0.0, ready - now))
            # asyncio.wait, not wait_for: 3.11's wait_for can lose a cancel (fletchat.aio)
            self._nudge = asyncio.get_running_loop().create_future()
            await asyncio.wait([self._nudge], timeout=delay)
            now = self._clock()
            await self._serve(self.server.poll(now))
            for job in list(self._jobs.values()):
                await self._handle(job, job.fetch.tick(now))

    # ---- connections ----
    async def attach(self, peer: str, link: Link) -> None:
        self._links[peer] = link
        self._buckets[peer] = _Bucket(self._clock())
        for sha in list(self._jobs):
            await self._send(peer, F.Query(sha, fetching=True))

    async def detach(self, peer: str) -> None:
        self._links.pop(peer, None)
        self._buckets.pop(peer, None)
        self.server.forget(peer)
        self._last_serve = {k: t for k, t in self._last_serve.items() if k[0] != peer}  # not waited for
        fellow_of = [job for sha, job in self._jobs.items() if peer in self.swarm.fellows(sha)]
        self.swarm.forget(peer)
        self._asked = {k: v for k, v in self._asked.items() if k[0] != peer}
        for job in list(self._jobs.values()):
            await self._handle(job, job.fetch.remove_holder(peer, self._clock()))
        for job in fellow_of:  # one fetcher fewer: the stripes widen
            await self._restripe(job, self._clock())

    async def _send(self, peer: str, frame: F.FilesFrame) -> None:
        link = self._links.get(peer)
        if link is not None:
            await link.send(F.encode(frame))

    async def _close(self, peer: str, code: int, reason: str) -> None:
        link = self._links.get(peer)
        log.warning("files connection to %s closed: %s", peer, reason)
        await self.detach(peer)
        if link is not None:
            await link.close(code, reason[:123])

    # ---- fetching ----
    async def fetch(self, manifest: FileManifest, holders: Iterable[str] = ()) -> asyncio.Future[Path]:
        """Start (or resume) fetching ``manifest``; the future is the stored file's path. Every
        connected peer is asked whether it holds it, besides ``holders`` (e.g. the origin)."""
        if manifest.sha256 in self._jobs:
            return self._jobs[manifest.sha256].result
        if not self.can_start():
            raise BusyError(f"{L.MAX_CONCURRENT_FETCHES} files are already downloading; try again when one is done.")
        have = await self._off_loop(self.store.begin, manifest)  # QuotaError goes to the caller
        job = self._jobs[manifest.sha256] = _Job(Fetch(manifest, have), lambda job: ChunkWriter(
            self.store, manifest, self._pool, asyncio.get_running_loop(), self.budget,
            lambda batch, err: self._written(job, batch, err)))
        self.swarm.begin(manifest)
        now = self._clock()
        events = job.fetch.start(now) if len(have) == manifest.chunk_count else []
        for peer in holders:
            if peer in self._links:
                events += job.fetch.add_holder(peer, now)
        for peer in list(self._links):
            await self._send(peer, F.Query(manifest.sha256, fetching=True))
        await self._handle(job, events)  # no holder yet: the first tick says "waiting"
        return job.result

    def can_start(self) -> bool:
        """Room for one more download: at most ``MAX_CONCURRENT_FETCHES`` with a holder, and a
        bounded number more that wait for one (they must not block files others can send)."""
        active = sum(1 for j in self._jobs.values() if j.fetch.state is not FetchState.WAITING)
        return (active < L.MAX_CONCURRENT_FETCHES
                and len(self._jobs) < L.MAX_CONCURRENT_FETCHES + L.MAX_WAITING_FETCHES)

    async def _handle(self, job: _Job, events: list) -> None:
        sha = job.fetch.manifest.sha256
        for ev in events:
            if isinstance(ev, Request):
                await self._send(ev.holder, F.Get(sha, ev.index, job.fetch.manifest.chunk_size))
            elif isinstance(ev, Verified):  # written by a thread: reading goes on meanwhile
                with contextlib.suppress(RuntimeError):  # stopping: fetched again next run
                    job.writer.add(ev)
            elif isinstance(ev, Drop):
                await self._close(ev.peer, 1008, str(ev.verdict))
            elif isinstance(ev, Complete):
                job.complete = True
            elif isinstance(ev, HoldersGone):
                self.on_event(FileEvent("waiting", sha, job.fetch.bytes_verified, job.fetch.manifest.size,
                                        reason=NOBODY))
        if job.complete and job.writer.pending == 0 and not job.finishing:
            await self._finish(job)

    def _spawn(self, coro) -> asyncio.Task:
        """Disk work per chunk runs beside the reader, so one slow thread hop never stalls the
        pipeline of requests in flight (the state machines still see every event in order)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def idle(self) -> None:
        """Wait for the chunk reads and writes started so far (tests; an orderly stop)."""
        while True:
            if self._work:
                await asyncio.gather(*list(self._work), return_exceptions=True)
            elif any(job.writer.pending for job in self._jobs.values()):
                await asyncio.sleep(0.005)  # a writer thread is on it
            else:
                return

    def _written(self, job: _Job, batch: list[Verified], error: Exception | None) -> None:
        """The writer stored ``batch`` (or could not: those chunks are asked for again)."""
        if self._stopping:
            return
        m = job.fetch.manifest
        if error is not None:
            log.warning("could not store chunks %s of %s: %s", [c.index for c in batch],
                        m.sha256[:12], error)
            if self._jobs.get(m.sha256) is not job:
                return  # the download ended meanwhile
            job.complete = False
            now = self._clock()
            self._spawn(self._handle(job, [ev for c in batch for ev in job.fetch.forget(c.index, now)]))
            return
        for c in batch:
            self.swarm.written(m.sha256, c.index, c.proof)
        self._announce_soon()
        # from partial holders while nobody has the rest: the view keeps saying so
        kind, why = ("waiting", NOBODY) if job.fetch.holders_gone else ("progress", "")
        self.on_event(FileEvent(kind, m.sha256, job.fetch.bytes_verified, m.size, reason=why))
        if job.complete and job.writer.pending == 0 and not job.finishing:
            job.finishing = True
            self._spawn(self._finish(job))

    async def _finish(self, job: _Job) -> None:
        job.finishing = True
        m = job.fetch.manifest
        self._jobs.pop(m.sha256, None)
        for peer in job.fetch.holders:
            for i in job.fetch.in_flight(peer):
                await self._send(peer, F.Cancel(m.sha256, i))
        try:
            path = await self._off_loop(self.store.finish, m)
        except (OSError, BlobError) as err:
            self.swarm.end(m.sha256)
            await self._off_loop(self.store.abort, m.sha256)
            self.on_event(FileEvent("error", m.sha256, 0, m.size, reason=str(err)))
            job.result.set_exception(err)
            return
        log.info("fetched %s: %d chunks, %d were on disk, %d chunk frames received from %d peers (%s)",
                 m.sha256[:12], m.chunk_count, job.on_disk, job.received, len(job.by_peer),
                 ", ".join(f"{p[:12]}: {n}" for p, n in sorted(job.by_peer.items())))
        for peer in self.swarm.end(m.sha256):  # they now ask us for any chunk
            await self._send(peer, F.Holds(m.sha256, True))
        self.on_event(FileEvent("done", m.sha256, m.size, m.size, path=path))
        job.result.set_result(path)

    # ---- frames in ----
    async def on_frame(self, peer: str, raw: str | bytes) -> None:
        admitted = await self._admit(peer, raw)
        if admitted is None:
            return
        frame, now = admitted
        job = self._jobs.get(frame.sha256)
        if isinstance(frame, F.Query | F.Holds | F.Have):
            await self._on_holding(peer, frame, job, now)
        elif isinstance(frame, F.Get):
            await self._on_get(peer, frame, now)
        elif isinstance(frame, F.Cancel):
            self.server.on_cancel(peer, frame.sha256, frame.index)
            self._asked.pop((peer, frame.sha256, frame.index), None)
        elif job is None:
            pass  # an answer for a fetch that already finished: chunks we no longer need
        elif isinstance(frame, F.NoChunk):
            await self._handle(job, job.fetch.on_refused(peer, frame.index, frame.reason, now))
        else:
            await self._on_chunk(peer, job, frame, now)

    async def _on_chunk(self, peer: str, job: _Job, frame: F.Chunk, now: float) -> None:
        link, size = self._links.get(peer), len(frame.data)
        await self.budget.reserve(size)  # the disk is behind: so is this reader
        try:
            # in a thread, so chat frames on the loop do not wait (hashing chunks in parallel
            # tasks measured no faster, with chat slower: more threads beside the loop)
            leaf = (await self._off_loop(leaf_hash, frame.data)
                    if size >= HASH_IN_THREAD_BYTES else None)
            if self._links.get(peer) is not link or self._jobs.get(frame.sha256) is not job:
                return  # its connection was replaced (the chunk would look unrequested) or the download ended
            job.received += 1
            job.by_peer[peer] = job.by_peer.get(peer, 0) + 1
            await self._handle(job, job.fetch.on_chunk(peer, frame.index, frame.data, frame.proof,
                                                       now, leaf))
        finally:
            self.budget.release(size)

    async def _on_holding(self, peer: str, frame: F.Query | F.Holds | F.Have, job: _Job | None,
                          now: float) -> None:
        """``query``: answered; ``holds`` true, ``have``: a holder. A query (``fetching``) or have
        for a file we fetch too comes from a fellow fetcher (``_fellow``)."""
        if isinstance(frame, F.Query):
            self.swarm.asked(frame.sha256, peer)  # fetching it (or checking its hash): told when done
            await self._send(peer, F.Holds(frame.sha256, self.store.has(frame.sha256)))
        elif isinstance(frame, F.Holds):
            if job is not None and frame.have:
                await self._handle(job, job.fetch.add_holder(peer, now))
        elif job is not None and frame.ranges:
            await self._handle(job, job.fetch.add_holder(peer, now, frame.indexes(job.fetch.manifest.chunk_count)))
        # (an earlier version's query has no "fetching": it would not understand a have)
        if job is not None and (isinstance(frame, F.Have) or isinstance(frame, F.Query) and frame.fetching):
            await self._fellow(job, peer, now)

    async def _fellow(self, job: _Job, peer: str, now: float) -> None:
        """``peer`` fetches this file too: tell it what we can serve (once), and start our requests
        at a random chunk, so fetchers have different chunks to swap."""
        frames = self.swarm.interested(job.fetch.manifest.sha256, peer)
        for frame in frames:
            await self._send(peer, frame)
        if frames and not job.fetch.verified:
            await self._handle(job, job.fetch.spread(self.swarm.offset(job.fetch.manifest), now))
        if frames:
            await self._restripe(job, now)

    async def _restripe(self, job: _Job, now: float) -> None:
        """Our stripe of the origin's chunks among the fellow fetchers we know (``Fetch.stripe``):
        every fetcher ranks the same peer ids the same way."""
        if not self.me:
            return
        ranked = sorted(self.swarm.fellows(job.fetch.manifest.sha256) | {self.me})
        await self._handle(job, job.fetch.stripe(ranked.index(self.me), len(ranked), now))

    def _announce_soon(self) -> None:  # coalesced: have frames cost the receiver rate tokens
        if self.swarm.schedule():
            asyncio.get_running_loop().call_later(ANNOUNCE_S, lambda: self._spawn(self._announce()))

    async def _announce(self) -> None:
        for peer, frame in self.swarm.flush():
            await self._send(peer, frame)

    async def _admit(self, peer: str, raw: str | bytes) -> tuple[F.FilesFrame, float] | None:
        """(decoded frame, now), or None after closing a peer over its rate or a malformed frame."""
        if peer not in self._links:
            return None
        now = self._clock()
        # Text frames (requests, answers) cost a token; chunks are bounded by what we asked for
        # (an unasked one is a verdict), so they never hit the bucket on a fast link.
        if isinstance(raw, str) and not self._buckets[peer].take(now):
            await self._close(peer, 1008, "rate limit exceeded")
            return None
        try:
            return F.decode(raw), now
        except F.FrameError as err:
            await self._close(peer, err.code, str(err))
            return None

