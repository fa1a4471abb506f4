"""Store reads (history pages, searches) run on lanes of their own, bounded per process, and a
static client's queries never run on the host's loop: a flood of slow searches (each may wait up
to 2 s for the store writer) once ran on the loop (``/relay``) or filled the loop's shared pool,
where the mesh's signature checks and every tab's sends run."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path

from fletchat import reading
from fletchat.hub import Hub, HubSession
from fletchat.protocol import Pong
from fletchat.relay_protocol import (
    RelayFound,
    RelayPage,
    decode_server_frame,
    encode_client_history,
    encode_client_ping,
    encode_client_search,
    encode_client_send,
)
from fletchat.store import Store
from tests.test_relay import Host, host, open_client  # noqa: F401 (the fixture)
from tests.timing import eventually, scaled

SLOW_S = 1.0  # what each faked search takes: far longer than a loop turn or a pool hop


class SlowReads:
    """Wraps a store method: each call sleeps ``SLOW_S`` first; counts calls running at once."""

    def __init__(self, real, read_first: bool = False,
                 release: threading.Event | None = None) -> None:
        self.real = real
        self.read_first = read_first  # read, then sleep: what happens meanwhile is not in it
        self.release = release  # set: each call waits for it (at most 10 s) instead of SLOW_S
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()
        self.started = threading.Event()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            found = self.real(*args, **kwargs) if self.read_first else None
            self.started.set()
            if self.release is not None:
                self.release.wait(10.0)
            else:
                time.sleep(SLOW_S)
            return found if self.read_first else self.real(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


async def _started(slow: SlowReads) -> None:
    deadline = time.monotonic() + scaled(5)
    while not slow.started.is_set():
        assert time.monotonic() < deadline, "no read started"
        await asyncio.sleep(0.01)


async def test_a_flood_of_searches_leaves_the_shared_pool_free(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    shared = ThreadPoolExecutor(2)  # the loop's shared pool (6 threads on 2 cores)
    loop.set_default_executor(shared)
    hub = Hub("me-peer", store=Store.open(tmp_path / "h.db"))
    try:
        me = HubSession(hub, device="headless")
        me.join("Ann")
        me.send("a needle in the history")
        slow = SlowReads(hub.store.search)
        hub.store.search = slow
        searches = [asyncio.ensure_future(hub.search_async("needle")) for _ in range(3)]
        await _started(slow)
        t0 = time.monotonic()
        assert await asyncio.to_thread(lambda: 42) == 42  # what a send or a check would need
        waited = time.monotonic() - t0
        assert waited < SLOW_S / 2, f"the shared pool waited {waited:.2f} s behind searches"
        results = await asyncio.wait_for(asyncio.gather(*searches), scaled(3 * SLOW_S + 10))
        assert all(r and r[0][0].text == "a needle in the history" for r in results)
        assert slow.most == reading.SEARCH_THREADS
        assert slow.threads and all(t.startswith("searches") for t in slow.threads)
        # history pages have their own lane: a page is read while the searches queue
        page = await asyncio.wait_for(hub.history_async("general"), scaled(5))
        assert [m.text for m in page if m.kind == "chat"] == ["a needle in the history"]
    finally:
        hub.close()
        shared.shutdown(wait=False)


async def pinger(host: Host, slow: SlowReads) -> asyncio.Future[float]:  # noqa: F811
    """Another static client on a thread of its own (a stalled loop cannot hide from it),
    connected and served once this returns: once ``slow`` has started, how long a ping of
    hers waits for its pong (the future's result)."""
    from websockets.sync.client import connect

    connected = threading.Event()

    def eves_ping() -> float:
        with connect(host.url, max_size=None) as ws:
            ws.recv(scaled(5))  # her own first frame is in: she is served
            connected.set()
            assert slow.started.wait(scaled(5)), "the slow read never started"
            t0 = time.monotonic()
            ws.send(encode_client_ping())
            while not isinstance(decode_server_frame(ws.recv(scaled(5))), Pong):
                pass
            return time.monotonic() - t0

    eve = asyncio.ensure_future(asyncio.to_thread(eves_ping))
    deadline = time.monotonic() + scaled(5)
    while not connected.is_set():
        assert time.monotonic() < deadline and not eve.done(), "Eve never connected"
        await asyncio.sleep(0.01)
    return eve


async def test_a_static_clients_slow_search_never_stalls_the_host(host: Host):  # noqa: F811
    hub = host.node.hub
    bob = HubSession(hub, device="headless")
    bob.join("Bob")
    bob.send("a needle for the search")
    slow = SlowReads(hub.store.search)
    hub.store.search = slow
    ada = await open_client(host, "Ada")
    eve = await pinger(host, slow)
    await ada.ws.send(encode_client_search(1, "needle"))
    await ada.ws.send(encode_client_history(2, "general"))  # answered after the search
    waited = await asyncio.wait_for(eve, scaled(10))
    assert waited < SLOW_S / 2, f"another client's ping waited {waited:.2f} s behind a search"
    found = await ada.next(RelayFound, timeout=scaled(SLOW_S + 5))
    assert found.req == 1 and [m.text for m, _ in found.results] == ["a needle for the search"]
    page = await ada.next(RelayPage, timeout=scaled(5))
    assert page.req == 2 and any(m.text == "a needle for the search" for m in page.msgs)


async def test_a_static_client_connects_with_its_history_read_off_the_loop(host: Host):  # noqa: F811
    """A new ``/relay`` connection's history was read on the host's loop (before ``hello``,
    outside any rate limit: connect, close, again). Now it is read on the history lane, and
    what happens meanwhile reaches the new client once: neither lost nor doubled."""
    from fletchat.protocol import MsgFrame, SyncFrame

    hub = host.node.hub
    bob = HubSession(hub, device="headless")
    bob.join("Bob")
    bob.send("before")
    slow = SlowReads(hub.store.recent, read_first=True)
    eve = await pinger(host, slow)
    hub.store.recent = slow
    ada = asyncio.ensure_future(open_client(host))  # no hello: the history comes on connect
    waited = await asyncio.wait_for(eve, scaled(10))
    assert waited < SLOW_S / 2, f"another client's ping waited {waited:.2f} s behind a connect"
    during = bob.send("during the read")
    client = await asyncio.wait_for(ada, scaled(10))
    after = bob.send("after the welcome")
    assert during is not None and after is not None
    seen: list[str] = []
    async with asyncio.timeout(scaled(10)):
        while after.id not in seen:
            frame = decode_server_frame(await client.ws.recv())
            if isinstance(frame, MsgFrame):
                seen.append(frame.message.id)
            elif isinstance(frame, SyncFrame):
                seen += [m.id for m in frame.messages]
    texts = {m.id: m.text for m in hub.history(limit=50)}
    counts = {texts.get(i, i): seen.count(i) for i in seen if texts.get(i) != ""}
    assert counts.get("before") == 1 and counts.get("during the read") == 1, counts
    assert counts.get("after the welcome") == 1, counts
    await client.ws.close()


async def test_more_events_during_the_read_than_a_client_may_lag_close_it(host: Host,  # noqa: F811
                                                                          monkeypatch):
    """What happens while a new connection's history is read is held for it, up to what a
    client may be behind (``RELAY_QUEUE``); past that it is closed, to reconnect, as a client
    that fell behind is (the held events no longer grow)."""
    from fletchat import relay

    monkeypatch.setattr(relay, "RELAY_QUEUE", 5)
    hub = host.node.hub
    bob = HubSession(hub, device="headless")
    bob.join("Bob")
    release = threading.Event()  # the read ends when the test says (a fixed 1 s could end first)
    slow = SlowReads(hub.store.recent, read_first=True, release=release)
    hub.store.recent = slow
    client = await open_client(host)
    while not slow.started.is_set():
        await asyncio.sleep(0.01)
    try:
        for i in range(12):
            bob.send(f"busy {i}")
        joining = [r for r in gc.get_objects() if type(r) is relay.Relay and r._joining]
        assert joining
        await eventually(lambda: all(c.fell_behind for r in joining for c in r._joining),
                         "the joining client marked as fallen behind", 10)  # the fan-out
        assert all(len(held) <= 5 for r in joining for held in r._joining.values())
    finally:
        release.set()
    code, reason = await client.closed()
    assert code == 1013 and "fell behind" in reason


async def test_a_send_still_on_its_thread_is_posted_before_the_leave(host: Host):  # noqa: F811
    """A static client that sends and goes at once: its send runs on a worker thread, and its
    leave line used to be posted at once, before the message (or, for a rename, between the
    check and the roster change, leaving a ghost in the roster)."""
    from fletchat.model import KIND_CHAT, KIND_LEAVE

    hub = host.node.hub
    real_post = hub.post

    def slow_post(msg):
        if msg.kind == KIND_CHAT:
            time.sleep(SLOW_S)
        return real_post(msg)

    hub.post = slow_post
    client = await open_client(host, "Ada")
    bob = HubSession(hub, device="headless")
    bob.join("Bob")
    await client.ws.send(encode_client_send("last words", "general"))
    await asyncio.sleep(0.2)  # the send is on its thread
    await client.ws.close()
    bob.typing("general")  # something for Ada's side to send: it finds her gone, and ends
    deadline = time.monotonic() + scaled(10)
    lines: list = []
    while time.monotonic() < deadline:
        lines = [m for m in hub.history(limit=20) if m.author == "Ada" and m.kind in (
            KIND_CHAT, KIND_LEAVE)]
        if len(lines) == 2:
            break
        await asyncio.sleep(0.05)
    assert [m.kind for m in lines] == [KIND_CHAT, KIND_LEAVE], lines
    assert "Ada" not in {p.name for p in hub.online()}


async def test_searches_wait_for_a_busy_writer_without_holding_the_search_lane(tmp_path: Path,
                                                                               monkeypatch):
    """A search first waits (up to ``SEARCH_WAIT_S``) for messages still being stored. That
    wait held the one search thread, so searches made during a big catch-up waited for each
    other's waits; now they wait on the loop, side by side, and only the queries take turns."""
    monkeypatch.setattr(reading, "SEARCH_WAIT_S", 0.5)
    hub = Hub("me-peer", store=Store.open(tmp_path / "h.db"))
    try:
        me = HubSession(hub, device="headless")
        me.join("Ann")
        me.send("a needle in the history")
        hub._writer.flush(5.0)
        writer = hub._writer
        monkeypatch.setattr(writer, "flush_ticket", lambda: 10**9)  # never caught up
        monkeypatch.setattr(writer, "flush", lambda timeout=None: time.sleep(timeout or 0))
        searches = [asyncio.ensure_future(hub.search_async("needle")) for _ in range(3)]
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        assert await reading._SEARCHES.run(lambda: 42) == 42  # the lane is free meanwhile
        waited = time.monotonic() - t0
        assert waited < 0.25, f"the search lane was held {waited:.2f} s by writer waits"
        results = await asyncio.wait_for(asyncio.gather(*searches), scaled(10))
        assert all(r and r[0][0].text == "a needle in the history" for r in results)
    finally:
        hub.close()


async def test_a_search_right_after_a_send_finds_it(tmp_path: Path):
    """The store writer commits in batches; a search waits for what was sent before it (on
    the loop now, no longer on the search thread), so what was just sent is found."""
    hub = Hub("me-peer", store=Store.open(tmp_path / "h.db"))
    try:
        me = HubSession(hub, device="headless")
        me.join("Ann")
        for i in range(300):
            me.send(f"filler {i}")
        me.send("the zebra just now")
        found = await asyncio.wait_for(hub.search_async("zebra"), scaled(10))
        assert [m.text for m, _ in found] == ["the zebra just now"]
    finally:
        hub.close()
