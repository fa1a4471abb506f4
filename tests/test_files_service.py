"""The asyncio files service end to end over in-memory links (no sockets; the mesh provides those):
a fetch from several holders at once with a lying one, a flooder, resume after a restart, a file
nobody has, serving what we hold, and malformed frames."""

from __future__ import annotations

import asyncio
import io
import random
import threading
import time
from collections import Counter

import pytest

from fletchat.files import frames as F
from fletchat.files import limits as L
from fletchat.files.blobstore import BlobStore
from fletchat.files.serve import Server
from fletchat.files.service import FileEvent, FilesService
from fletchat.files.wholehash import RunningHash
from tests.timing import eventually

CHUNK = L.MIN_CHUNK_SIZE
DATA = random.Random(5).randbytes(CHUNK * 12 + 77)


class Pipe:
    """One direction of a files connection: frames arrive in order at the other service."""

    def __init__(self, me: str, other: FilesService, log: list) -> None:
        self.me, self.other, self.log = me, other, log
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed: tuple[int, str] | None = None
        self.tamper = None  # frame -> frame, for a lying holder
        self.replaced = False  # as the files lane's reader: the frame in hand is its last
        self.back: Pipe | None = None  # the other direction of the same connection
        self.task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        while not self.replaced:
            frame = await self.queue.get()
            if self.replaced:  # read after the replacement: dropped, as the lane's reader does
                break
            await self.other.on_frame(self.me, frame)

    async def send(self, frame) -> None:
        if self.closed is None:
            self.log.append((self.me, frame))
            frame = self.tamper(frame) if self.tamper else frame
            if frame is not None:  # a tamper may swallow a frame
                await self.queue.put(frame)

    async def close(self, code: int, reason: str) -> None:
        """As a WebSocket close: nothing more goes either way, and the other end hears of it
        (its lane detaches this peer), so what it asked here is asked of others at once."""
        self.closed = (code, reason)
        back = self.back
        if back is not None and back.closed is None:
            back.closed = (code, reason)
            await self.other.detach(self.me)


async def connect(a: str, sa: FilesService, b: str, sb: FilesService, log: list) -> tuple[Pipe, Pipe]:
    ab, ba = Pipe(a, sb, log), Pipe(b, sa, log)  # ab: frames a sends, delivered to b
    ab.back, ba.back = ba, ab
    await sa.attach(b, ab)
    await sb.attach(a, ba)
    return ab, ba


@pytest.fixture
async def service():
    """Makes started services; every one is stopped at the end, whatever the test did."""
    made: list[FilesService] = []

    def make(tmp_path, name: str, events: list | None = None, **kw) -> FilesService:
        s = FilesService(BlobStore(tmp_path / name / "files"),
                         on_event=(events.append if events is not None else lambda e: None), **kw)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        await s.stop()


def liar(frame):
    if isinstance(frame, bytes):
        c = F.decode(frame)
        return F.encode(F.Chunk(c.sha256, c.index, c.proof, bytes(len(c.data))))
    return frame


async def test_fetch_from_several_holders_drops_the_liar(tmp_path, service):
    log: list = []
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(DATA), "movie.mp4", "video/mp4", CHUNK)
    other = service(tmp_path, "other")
    other.store.import_stream(io.BytesIO(DATA), "copy.mp4", "video/mp4", CHUNK)
    bad = service(tmp_path, "bad")
    bad.store.import_stream(io.BytesIO(DATA), "x", "video/mp4", CHUNK)
    events: list[FileEvent] = []
    me = service(tmp_path, "me", events)
    pipes = {}
    for name, s in (("origin", origin), ("other", other), ("bad", bad)):
        pipes[name] = await connect(name, s, "me", me, log)
    pipes["bad"][0].tamper = liar
    result = await me.fetch(m, holders=["origin"])
    path = await asyncio.wait_for(result, 30)
    assert path.read_bytes() == DATA
    assert pipes["bad"][1].closed == (1008, "chunk failed its hash")  # me closed its link to bad
    chunks_from = Counter(p for p, f in log if isinstance(f, bytes))
    assert chunks_from["origin"] >= 2 and chunks_from["other"] >= 2  # both did part of it
    assert events[-1].kind == "done" and events[-1].path == path
    assert any(e.kind == "progress" for e in events)
    # and now "me" holds it: a newcomer can fetch it from "me" alone
    late = service(tmp_path, "late")
    await connect("me", me, "late", late, log)
    assert (await asyncio.wait_for(await late.fetch(m, ["me"]), 30)).read_bytes() == DATA
    for s in (origin, other, bad, me, late):
        await s.stop()


async def test_one_holders_chunks_arrive_and_are_written_in_order(tmp_path, service, monkeypatch):
    """Chunk reads and writes run in parallel threads, slowed here at random so they finish out
    of order; still the holder answers in the order it was asked and the receiver writes in the
    order it verified, so its running whole-file hash never holds a chunk that came early
    (unordered, a 200 MB download held up to 16 MiB that way) and nothing is read back."""
    rng = random.Random(3)
    real_read, real_write = BlobStore.read_chunk, BlobStore.write_chunks
    monkeypatch.setattr(BlobStore, "read_chunk", lambda self, *a: (
        time.sleep(rng.random() * 0.004), real_read(self, *a))[1])
    monkeypatch.setattr(BlobStore, "write_chunks", lambda self, *a: (
        time.sleep(rng.random() * 0.004), real_write(self, *a))[1])
    early: list[int] = []
    real_add = RunningHash.add
    monkeypatch.setattr(RunningHash, "add", lambda self, i, d: (
        real_add(self, i, d), early.append(self._early_bytes))[0])
    data = random.Random(9).randbytes(CHUNK * 48 + 5)
    log: list = []
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    me = service(tmp_path, "me")
    await connect("origin", origin, "me", me, log)
    path = await asyncio.wait_for(await me.fetch(m, holders=["origin"]), 30)
    assert path.read_bytes() == data
    sent = [F.decode(f).index for p, f in log if p == "origin" and isinstance(f, bytes)]
    assert sent == sorted(sent) and len(set(sent)) == m.chunk_count
    assert len(early) == m.chunk_count and max(early) == 0


async def test_one_slow_read_holds_back_no_other_files_answers(tmp_path, service, monkeypatch):
    """Answers keep their order per file, not per peer: a holder's slow read of one file's chunk
    (a disk busy, a lock held by another download's finish) does not hold back the answers
    for another file the same peer asked for meanwhile."""
    slow_done, go_on = threading.Event(), threading.Event()
    real_read = BlobStore.read_chunk
    origin = service(tmp_path, "origin")
    a = origin.store.import_stream(io.BytesIO(DATA), "a.bin", "application/octet-stream", CHUNK)
    b = origin.store.import_stream(io.BytesIO(DATA[::-1]), "b.bin", "application/octet-stream", CHUNK)

    def read(self, sha, index, chunk):
        if sha == a.sha256 and index == 0:
            go_on.wait(60)  # until b is complete (a per-peer order would never get there)
            slow_done.set()
        return real_read(self, sha, index, chunk)

    monkeypatch.setattr(BlobStore, "read_chunk", read)
    me = service(tmp_path, "me")
    await connect("origin", origin, "me", me, [])
    first = await me.fetch(a, holders=["origin"])
    second = await me.fetch(b, holders=["origin"])
    try:
        assert (await asyncio.wait_for(second, 30)).read_bytes() == DATA[::-1]
        assert not slow_done.is_set()  # b was complete while a's first chunk was still being read
    finally:
        go_on.set()
    assert (await asyncio.wait_for(first, 30)).read_bytes() == DATA


def stuck_disk(monkeypatch) -> threading.Event:
    """Room for 4 chunks waiting for the disk, and writes that wait until the event is set."""
    monkeypatch.setattr(L, "MAX_UNWRITTEN_BYTES", 4 * CHUNK)
    disk = threading.Event()
    real_write = BlobStore.write_chunks
    monkeypatch.setattr(BlobStore, "write_chunks", lambda self, *a: (
        disk.wait(30), real_write(self, *a))[1])
    return disk


async def test_a_disk_that_falls_behind_holds_the_readers_not_memory(tmp_path, service, monkeypatch):
    """Verified chunks waiting for the disk, and those being hashed, are bounded together
    (``MAX_UNWRITTEN_BYTES``) however many holders send at once: past that every files
    connection's reader waits for the writer, so the rest stays with the senders (their
    windows), not in this peer's memory; the download completes once the disk catches up."""
    disk = stuck_disk(monkeypatch)
    data = random.Random(11).randbytes(CHUNK * 40)
    me = service(tmp_path, "me")
    holders = []
    for name in ("origin", "other", "third"):
        holder = service(tmp_path, name)
        m = holder.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
        await connect(name, holder, "me", me, [])
        holders.append(name)
    result = await me.fetch(m, holders=holders)
    job = me._jobs[m.sha256]
    await eventually(lambda: job.received >= 4, "chunks while the disk is stuck")
    deadline = time.monotonic() + 0.5  # nothing more is taken in while the disk stays stuck
    while time.monotonic() < deadline:
        held = me.budget.unwritten + me.budget.reserved
        assert job.received <= 4 and held <= 4 * CHUNK, (job.received, held)
        await asyncio.sleep(0.02)
    disk.set()
    assert (await asyncio.wait_for(result, 30)).read_bytes() == data
    assert me.budget.unwritten == me.budget.reserved == 0
    assert len(job.by_peer) >= 2  # several holders were sending


async def test_the_disk_budget_holds_for_all_downloads_together(tmp_path, service, monkeypatch):
    """Up to 68 downloads run at once (4, and 64 that partial holders feed): the bytes waiting
    for a stuck disk are bounded for all of them together, not per download."""
    disk = stuck_disk(monkeypatch)
    me = service(tmp_path, "me")
    results, datas = [], []
    for n in range(3):
        holder = service(tmp_path, f"h{n}")
        data = random.Random(20 + n).randbytes(CHUNK * 12)
        m = holder.store.import_stream(io.BytesIO(data), f"{n}.bin", "application/octet-stream", CHUNK)
        await connect(f"h{n}", holder, "me", me, [])
        results.append(await me.fetch(m, holders=[f"h{n}"]))
        datas.append(data)
    await eventually(lambda: me.budget.waiting >= 2, "readers of several downloads waiting")
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        held = me.budget.unwritten + me.budget.reserved
        assert held <= 4 * CHUNK, held
        await asyncio.sleep(0.02)
    disk.set()
    for result, data in zip(results, datas, strict=True):
        assert (await asyncio.wait_for(result, 30)).read_bytes() == data


async def test_a_connection_replaced_while_its_reader_waits_is_no_liar(tmp_path, service, monkeypatch):
    """A reader that waited for the disk while its connection was replaced (a reconnect) drops
    the chunk it held: the new connection did not ask for it, and taking it would have judged an
    honest holder a liar (closed, never asked again: the download stalled)."""
    disk = stuck_disk(monkeypatch)
    data = random.Random(12).randbytes(CHUNK * 40)
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(data), "a.bin", "application/octet-stream", CHUNK)
    me = service(tmp_path, "me")
    pipes = await connect("origin", origin, "me", me, [])
    result = await me.fetch(m, holders=["origin"])
    await eventually(lambda: me.budget.waiting >= 1, "a reader waiting for room, a chunk in hand")
    old_ab, old_ba = pipes
    old_ab.replaced = old_ba.replaced = True
    await me.detach("origin")
    await origin.detach("me")
    _ab, ba = await connect("origin", origin, "me", me, [])
    disk.set()
    assert (await asyncio.wait_for(result, 30)).read_bytes() == data
    assert ba.closed is None  # the new connection was not closed as a liar's


async def fetch_while_writes_fail(tmp_path, service, monkeypatch, caplog, *errors: Exception
                                  ) -> tuple[bytes, Counter]:
    """A one-holder download whose first ``len(errors)`` batch writes raise these: the bytes it
    ends with, and how often each chunk was sent."""
    failures = list(errors)
    real_write = BlobStore.write_chunks

    def failing(self, manifest, chunks):
        if failures:
            raise failures.pop()
        return real_write(self, manifest, chunks)

    monkeypatch.setattr(BlobStore, "write_chunks", failing)
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(DATA), "a.bin", "application/octet-stream", CHUNK)
    me = service(tmp_path, "me")
    log: list = []
    await connect("origin", origin, "me", me, log)
    with caplog.at_level("WARNING", logger="fletchat.files"):
        path = await asyncio.wait_for(await me.fetch(m, holders=["origin"]), 30)
    assert not failures
    return path.read_bytes(), Counter(F.decode(f).index for p, f in log
                                      if p == "origin" and isinstance(f, bytes))


async def test_a_writer_that_fails_unexpectedly_still_finishes_the_download(tmp_path, service,
                                                                           monkeypatch, caplog):
    """Not only disk errors: any failure of a batch is reported (its chunks fetched again), or
    the writer would stay "draining" for good and the download never finish."""
    data, _sent = await fetch_while_writes_fail(tmp_path, service, monkeypatch, caplog,
                                                ValueError("a bug"))
    assert data == DATA
    assert any("writing chunks failed" in r.getMessage() for r in caplog.records)


async def test_chunks_the_disk_refused_are_fetched_again(tmp_path, service, monkeypatch, caplog):
    """A write that fails (a full disk, an I/O error) loses none of the download: the chunks of
    that batch are forgotten and asked for again, and the file completes once writes work."""
    data, sent = await fetch_while_writes_fail(tmp_path, service, monkeypatch, caplog,
                                               *[OSError(28, "No space left on device")] * 2)
    assert data == DATA
    assert sum("No space left" in r.getMessage() for r in caplog.records) == 2
    assert sum(sent.values()) > len(DATA) // CHUNK + 1  # the refused ones came again


async def test_a_file_nobody_has_says_so_and_resumes_when_a_holder_comes(tmp_path, service):
    log: list = []
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(DATA), "a.bin", "application/octet-stream", CHUNK)
    events: list[FileEvent] = []
    me = service(tmp_path, "me", events, tick_s=0.05)
    result = await me.fetch(m)
    await eventually(lambda: any(e.kind == "waiting" for e in events), "a waiting event")
    assert not result.done()
    await connect("origin", origin, "me", me, log)
    assert (await asyncio.wait_for(result, 30)).read_bytes() == DATA
    await origin.stop()
    await me.stop()


async def test_resume_after_a_restart_asks_only_for_missing_chunks(tmp_path, service):
    log: list = []
    origin = service(tmp_path, "origin")
    m = origin.store.import_stream(io.BytesIO(DATA), "a.bin", "application/octet-stream", CHUNK)
    # a first run stored 5 verified chunks, then died
    first = BlobStore(tmp_path / "me" / "files")
    first.begin(m)
    for i in (0, 1, 2, 7, 12):
        data, _ = origin.store.read_chunk(m.sha256, i, CHUNK)
        from fletchat.files.merkle import leaf_hash

        first.write_chunk(m, i, data, leaf_hash(data))
    del first
    me = service(tmp_path, "me")
    await connect("origin", origin, "me", me, log)
    path = await asyncio.wait_for(await me.fetch(m, ["origin"]), 30)
    assert path.read_bytes() == DATA
    asked = sorted(F.decode(f).index for p, f in log if p == "me" and isinstance(f, str)
                   and '"get"' in f)
    assert asked == [3, 4, 5, 6, 8, 9, 10, 11]
    await origin.stop()
    await me.stop()


async def test_a_flooding_requester_loses_its_files_connection(tmp_path, service):
    holder = service(tmp_path, "holder", server=Server(bytes_per_minute=0, burst=L.MAX_CHUNK_SIZE))
    big = random.Random(1).randbytes(CHUNK * (L.MAX_PENDING_REQUESTS_PER_PEER + 20))
    m = holder.store.import_stream(io.BytesIO(big), "a.bin", "application/octet-stream", CHUNK)
    sent, closed = [], []

    class Link:
        async def send(self, frame):
            sent.append(F.decode(frame))

        async def close(self, code, reason):
            closed.append((code, reason))

    await holder.attach("greedy", Link())
    for i in range(m.chunk_count):
        await holder.on_frame("greedy", F.encode(F.Get(m.sha256, i, CHUNK)))
        await holder.idle()  # each served chunk is read and sent by its own task
        if closed:
            break
    # the 1 MiB burst served 16 chunks, MAX_PENDING_REQUESTS_PER_PEER more waited (no budget
    # left), the next one is a flood
    assert [type(f) for f in sent] == [F.Chunk] * 16
    assert closed == [(1008, "too many chunk requests")]
    assert i == 16 + L.MAX_PENDING_REQUESTS_PER_PEER
    await holder.stop()


@pytest.mark.parametrize("raw, code", [
    ("{", 1002),
    (b"\x00", 1002),
    ("x" * 5000, 1009),
])
async def test_malformed_frames_close_the_files_connection(tmp_path, raw, code, service):
    s = service(tmp_path, "s")
    closed = []

    class Link:
        async def send(self, frame):
            pass

        async def close(self, c, reason):
            closed.append(c)

    await s.attach("p", Link())
    await s.on_frame("p", raw)
    assert closed == [code]
    await s.on_frame("p", "{}")  # after the close nothing more is read from it
    assert closed == [code]
    await s.stop()


async def test_queries_and_requests_for_what_we_lack(tmp_path, service):
    s = service(tmp_path, "s")
    m = s.store.import_stream(io.BytesIO(b"hello"), "h.txt", "text/plain", CHUNK)
    sent = []

    class Link:
        async def send(self, frame):
            sent.append(F.decode(frame))

        async def close(self, c, reason):
            raise AssertionError(reason)

    await s.attach("p", Link())
    await s.on_frame("p", F.encode(F.Query(m.sha256)))
    await s.on_frame("p", F.encode(F.Query("00" * 32)))
    await s.on_frame("p", F.encode(F.Get("00" * 32, 0, CHUNK)))
    await s.on_frame("p", F.encode(F.Get(m.sha256, 1, CHUNK)))  # past the end
    await s.on_frame("p", F.encode(F.Get(m.sha256, 0, CHUNK)))
    await s.idle()  # chunks are read and sent by their own tasks
    assert sent[:4] == [F.Holds(m.sha256, True), F.Holds("00" * 32, False),
                        F.NoChunk("00" * 32, 0, "not_found"), F.NoChunk(m.sha256, 1, "not_found")]
    assert isinstance(sent[4], F.Chunk) and sent[4].data == b"hello"
    await s.stop()


async def test_concurrent_fetches_are_bounded(tmp_path, service):
    from fletchat.files.manifest import FileManifest
    from fletchat.files.service import BusyError

    me = service(tmp_path, "me")
    futures = []
    # Nobody holds these: they wait, and waiting ones do not hold a download slot, up to a bound.
    for i in range(L.MAX_CONCURRENT_FETCHES + L.MAX_WAITING_FETCHES):
        m = FileManifest(f"{i:064x}", 10, CHUNK, "00" * 32, f"f{i}", "text/plain")
        futures.append(await me.fetch(m))
    assert await me.fetch(m) is futures[-1]  # the same file again is the same download
    with pytest.raises(BusyError, match="already downloading"):
        await me.fetch(FileManifest("ff" * 32, 10, CHUNK, "00" * 32, "one more", "text/plain"))
