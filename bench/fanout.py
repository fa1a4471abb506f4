"""Figure 5: host-mode fan-out of one message to N tabs with R rows already shown, this app beside
the tutorial's own chat (``bench/tutorial_chat.py``) and a bare ``PubSubHub``, interleaved.

Tabs are real Flet server-side sessions (``flet.messaging.session.Session``) on a stand-in
connection that msgpack-encodes every outgoing message exactly as flet-web's connection does and,
instead of writing to a browser's WebSocket, notes when the patch carrying the new message is
ready to go out. That is everything the host does per tab; the browser's own rendering is not
included (browsers are far too heavy for 100 tabs on 2 cores).

- app: each tab runs the app's ``ChatView`` over a ``HubBackend`` (as ``make_session_main``
  does); R rows shown = the reader loaded older pages until R rows are on screen.
- tutorial: each tab runs the tutorial's ``main`` with R ``ChatMessage`` rows in its list.
- bare: N async topic subscribers of a ``PubSubHub`` that only note the time.

Per (R, N): heap per tab (tracemalloc while the N tabs are opened, divided by N), then rounds of
one message to each of the three in turn (interleaved, so machine load hits all alike): latency
from the send call to the *last* tab's patch encoded (p50, p99), and bytes sent per tab per message.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import percentile, row


def _speedup(on: bool) -> None:
    """The app's tabs run with its Flet speed-up (``fletchat/ui/flet_speedup.py``, installed by
    host mode); the tutorial's run stock Flet 1.0.5, as the tutorial would."""
    from fletchat.ui import flet_speedup

    if on:
        flet_speedup.install()
    else:
        flet_speedup.uninstall()

TOPIC = "fletchat"
TIMEOUT = 120.0


def _make_conn_class():
    import msgpack
    from flet.controls.base_control import BaseControl
    from flet.messaging.connection import Connection
    from flet_web.fastapi import flet_app

    class BenchConnection(Connection):
        """flet-web's send path up to the socket: msgpack the message; note marker arrivals."""

        def __init__(self, loop, executor, pubsubhub, sink: dict[str, list[float]]) -> None:
            super().__init__()
            self.loop = loop
            self.executor = executor
            self.pubsubhub = pubsubhub
            self.page_url = "http://127.0.0.1/"
            self.sink = sink
            self.marker: bytes | None = None
            self.bytes_out = 0

        def send_message(self, message) -> None:
            # as flet_web's FletApp.send_message (host mode): its encoder, asked per message
            encode = flet_app.configure_encode_object_for_msgpack(BaseControl)
            body = msgpack.packb([message.action, message.body], default=encode)
            self.bytes_out += len(body) + 1
            if self.marker is not None and self.marker in body:
                self.sink.setdefault(self.marker.decode(), []).append(time.perf_counter())
                self.marker = None

    return BenchConnection


@dataclass
class Tabs:
    """N sessions of one implementation, and how to send one message to all of them."""

    name: str
    conns: list[Any]
    sessions: list[Any]
    sink: dict[str, list[float]]
    send: Any
    heap: float
    controls: int = 0  # Flet controls in the last tab's page as opened (before any message)
    lat: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU per tab, per message
    bytes_before: int = 0
    sent: int = 0

    async def one(self, marker: str) -> None:
        _speedup(self.name == "app")
        for c in self.conns:
            c.marker = marker.encode()
        t0 = time.perf_counter()
        c0 = time.process_time()
        self.send(marker)
        deadline = time.monotonic() + TIMEOUT
        n = len(self.conns)
        while len(self.sink.get(marker, [])) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {len(self.sink.get(marker, []))} of {n} tabs")
            await asyncio.sleep(0.0005)
        self.lat.append(max(self.sink[marker]) - t0)
        self.cpu.append((time.process_time() - c0) / n)
        self.sent += 1

    def bytes_per_tab(self) -> float:
        total = sum(getattr(c, "bytes_out", 0) for c in self.conns) - self.bytes_before
        return total / max(1, len(self.conns)) / max(1, self.sent)


async def _open(conn_cls, loop, executor, pubsub, sink, n: int, open_one) -> tuple[list, list, float]:
    from flet.controls.context import _context_page
    from flet.messaging.protocol import Message, MessageAction, RegisterClientResponseBody
    from flet.messaging.session import Session

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    conns, sessions = [], []
    for _ in range(n):
        conn = conn_cls(loop, executor, pubsub, sink)
        session = Session(conn)
        # what flet-web does for a new tab: page size from the client, the register response
        # with the page patch (mounts the page), then the session's main
        session.apply_page_patch({"width": 1280, "height": 800, "web": True})
        conn.send_message(Message(MessageAction.REGISTER_CLIENT, RegisterClientResponseBody(
            session_id=session.id, page_patch=session.get_page_patch(), error="")))
        _context_page.set(session.page)
        await open_one(session.page)
        conns.append(conn)
        sessions.append(session)
    await asyncio.sleep(0.1)
    gc.collect()
    per_tab = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    return conns, sessions, per_tab


def _counted(tabs: Tabs) -> Tabs:
    """``tabs`` with the controls of its last page counted, as opened (what its heap holds)."""
    from tests.test_ui_controls import count_controls

    tabs.controls = count_controls(tabs.sessions[-1].page) if tabs.sessions else 0
    return tabs


def _seed_store(path: Path, rows: int):
    from fletchat.clock import HLC
    from fletchat.model import Message
    from fletchat.store import Store

    store = Store.open(path)
    clock = HLC("seed-peer")
    for i in range(rows):
        store.add(Message.chat("Olga", f"earlier message {i}", "seed-peer"), clock.now(), seq=i + 1)
    return store


async def _host_hub(tmp: Path, key: str, rows: int):
    """The host's hub over a history of ``rows`` messages, once its one-time memory (the
    store's id filter, loaded on a thread at open) is in: that is not any tab's heap or CPU."""
    from fletchat.hub import Hub

    hub = Hub(f"host-{key}", "web-host", store=_seed_store(tmp / f"{key}.db", rows))
    known = getattr(hub.store, "known", None)
    deadline = time.monotonic() + TIMEOUT
    while known is not None and not known.ready and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return hub


async def _app_tabs(conn_cls, loop, executor, rows: int, n: int, tmp: Path, key: str) -> Tabs:
    from flet.pubsub.pubsub_hub import PubSubHub

    from fletchat.hub import HubSession
    from fletchat.ui import ChatView
    from fletchat.ui.hub_backend import HubBackend
    from fletchat.ui.screens import ScreensPublisher

    _speedup(True)
    hub = await _host_hub(tmp, key, rows)
    pubsub = PubSubHub(loop=loop, executor=executor)
    sink: dict[str, list[float]] = {}

    numbers = itertools.count()

    async def open_one(page) -> None:
        hub.use_pubsub(ScreensPublisher(page.pubsub, loop))  # as make_session_main
        session = HubSession(hub, device="browser")
        view = ChatView(page, HubBackend(session, page.pubsub))
        await view.mount()
        # a name of its own per tab, as a classroom has (names once came from the rows shown,
        # which repeat since join lines fold: repeated names hide lines instead of folding)
        session.join(f"Tab{next(numbers)}")
        while len(view.conversation.rows) < rows and await view.feed.older_page():
            pass
        view.updates.flush()

    conns, sessions, heap = await _open(conn_cls, loop, executor, pubsub, sink, n, open_one)
    sender = HubSession(hub, device="headless")
    tabs = _counted(Tabs("app", conns, sessions, sink, lambda text: sender.send(text), heap))
    sender.join("Sender")
    tabs.hub = hub  # type: ignore[attr-defined]
    return tabs


async def _tutorial_tabs(conn_cls, loop, executor, rows: int, n: int) -> Tabs:
    from flet.pubsub.pubsub_hub import PubSubHub

    from .tutorial_chat import Message, make_main

    _speedup(False)
    pubsub = PubSubHub(loop=loop, executor=executor)
    sink: dict[str, list[float]] = {}
    history = [Message("Olga", f"earlier message {i}", "chat_message") for i in range(rows)]
    main = make_main(history)
    conns, sessions, heap = await _open(conn_cls, loop, executor, pubsub, sink, n, main)
    send = lambda text: pubsub.send_all(Message("Sender", text, "chat_message"))
    return _counted(Tabs("tutorial", conns, sessions, sink, send, heap))


def _bare_tabs(loop, executor, n: int) -> Tabs:
    from flet.pubsub.pubsub_hub import PubSubHub

    hub = PubSubHub(loop=loop, executor=executor)
    sink: dict[str, list[float]] = {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    conns = []
    for i in range(n):
        async def handler(topic: str, msg: Any, sink=sink) -> None:
            sink.setdefault(msg, []).append(time.perf_counter())

        hub.subscribe_topic(f"s{i}", TOPIC, handler)
        conns.append(object())
    heap = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()

    class _Marker:  # the bare subscribers note the message itself
        pass

    tabs = Tabs("bare", [], [], sink, lambda text: hub.send_all_on_topic(TOPIC, text), heap)
    tabs.conns = [_Marker() for _ in range(n)]
    return tabs


async def _close(tabs: list[Tabs]) -> None:
    """Close every session and let their close tasks finish (no "Task was destroyed")."""
    for t in tabs:
        for s in t.sessions:
            s.close()
        hub = getattr(t, "hub", None)
        if hub is not None:
            hub.close()
    await asyncio.sleep(0.05)
    me = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not me]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _measure(configs: list[tuple[int, int]], reps: int, tmp: Path) -> dict:
    conn_cls = _make_conn_class()
    loop = asyncio.get_running_loop()
    out: dict[tuple[int, int], dict[str, dict[str, float]]] = {}
    with ThreadPoolExecutor(4) as executor:
        # a first small round warms imports and caches and is not reported
        for key, (rows, n) in [((-1, -1), (0, 1)), *(((r, n), (r, n)) for r, n in configs)]:
            app = await _app_tabs(conn_cls, loop, executor, rows, n, tmp, f"r{rows}n{n}")
            tut = await _tutorial_tabs(conn_cls, loop, executor, rows, n)
            bare = _bare_tabs(loop, executor, n)
            await asyncio.sleep(0.2)
            for t in (app, tut, bare):
                t.bytes_before = sum(getattr(c, "bytes_out", 0) for c in t.conns)
            # the tutorial re-diffs every row of every tab per message: fewer rounds when slow
            tut_reps = reps if rows * n <= 20_000 else max(3, reps // 5)
            for r in range(reps):
                await app.one(f"app{rows}n{n}x{r}zz")
                await asyncio.sleep(0.01)
                if r < tut_reps:
                    await tut.one(f"tut{rows}n{n}x{r}zz")
                    await asyncio.sleep(0.01)
                await bare.one(f"bare{rows}n{n}x{r}zz")
            if key[0] >= 0:
                out[key] = {
                    t.name: {"p50": percentile(t.lat, 50), "p99": percentile(t.lat, 99),
                             "cpu": percentile(t.cpu, 50), "heap": t.heap,
                             "bytes": t.bytes_per_tab(), "n": len(t.lat),
                             "controls": t.controls}
                    for t in (app, tut, bare)
                }
            await _close([app, tut])
            gc.collect()
    return out


def _per(m: dict[str, float]) -> float | None:
    return m["heap"] / 1024 / m["controls"] if m["controls"] else None


def configs_for(quick: bool) -> tuple[list[tuple[int, int]], int]:
    """The (rows shown, tabs) grid and rounds; ``FLETCHAT_BENCH_FANOUT="1000:100,0:10"`` and
    ``FLETCHAT_BENCH_REPS`` pick others (a loaded machine cannot always afford the full grid)."""
    grid_env = os.environ.get("FLETCHAT_BENCH_FANOUT", "")
    if grid_env:
        pairs = [tuple(int(x) for x in item.split(":")) for item in grid_env.split(",") if item]
        return [(r, n) for r, n in pairs], int(os.environ.get("FLETCHAT_BENCH_REPS", "10"))
    if quick:  # a smoke run inside quick mode's minute: every row kind, the flatness ratio too
        return [(0, 2), (100, 2)], 3  # (full mode has 1, 10, 50, 100 tabs, 1000 and 5000 rows)
    grid = [(r, n) for r in (0, 200, 1000) for n in (1, 10, 50, 100)]
    return [*grid, (5000, 10)], 20


def run(quick: bool) -> dict[str, dict[str, Any]]:
    configs, reps = configs_for(quick)
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        res = asyncio.run(_measure(configs, reps, Path(tmp)))
    rows_out = []
    for (r, n), m in res.items():
        app, tut, bare = m["app"], m["tutorial"], m["bare"]
        big = r == 1000 and n == 100
        rows_out.append(row(
            f"{n} tabs x {r} rows: send -> last tab's patch, p50", app["p50"] * 1000,
            tut["p50"] * 1000, unit="ms", baseline_name="tutorial", n=app["n"],
            target_max=50 if big else None,
            note=f"bare PubSubHub {bare['p50'] * 1000:.2f} ms; tutorial n={tut['n']}"))
        rows_out.append(row(
            f"{n} tabs x {r} rows: p99", app["p99"] * 1000, tut["p99"] * 1000, unit="ms",
            baseline_name="tutorial", n=app["n"], target_max=150 if big else None))
        rows_out.append(row(
            f"{n} tabs x {r} rows: CPU per tab per message, p50", app["cpu"] * 1000,
            tut["cpu"] * 1000, unit="ms", baseline_name="tutorial", n=app["n"],
            note="process_time from the send to the last tab's patch, over the tabs: what "
                 "the load on the machine does not change as much as the latency"))
        rows_out.append(row(
            f"{n} tabs x {r} rows: bytes per tab per message", app["bytes"], tut["bytes"],
            unit="B", baseline_name="tutorial", n=app["n"]))
        rows_out.append(row(
            f"{n} tabs x {r} rows: heap per tab", app["heap"] / 1024, tut["heap"] / 1024,
            unit="KiB", baseline_name="tutorial", n=n, target_max_ratio=1.5,
            note=f"bare PubSubHub subscriber {bare['heap'] / 1024:.1f} KiB; controls in a tab's "
                 f"page: app {app['controls']}, tutorial {tut['controls']}"))
        if r == 0:  # the empty page: what its heap ratio is made of
            rows_out.append(row(
                f"{n} tabs x {r} rows: heap per control in the page", _per(app), _per(tut),
                unit="KiB", baseline_name="tutorial", n=n,
                note="a tab's heap over the controls in its page: at or under 1x, the empty "
                     "page's ratio is its count of controls (panels, header, composer)"))
    flat = _flatness(res)
    return {"fanout": {"rows": rows_out + flat, "notes": [
        ("server-side Flet sessions on a stand-in connection (flet-web's msgpack encoding, no "
         "socket, no browser); app, tutorial and bare PubSubHub measured in the same run, one "
         "message to each in turn.")]}}


def _flatness(res: dict) -> list[dict[str, Any]]:
    """Per-message cost with many rows shown against 0 rows, same N (target <= 1.3x)."""
    out = []
    for (r, n), m in res.items():
        base = res.get((0, n))
        if r and base is not None:
            out.append(row(f"{n} tabs: p50 with {r} rows vs 0 rows", m["app"]["p50"] * 1000,
                           base["app"]["p50"] * 1000, unit="ms", baseline_name="app, 0 rows",
                           n=m["app"]["n"], target_max_ratio=1.3))
    return out
