"""Figure 5: host-mode fan-out of one message to N sessions (N = 1, 10, 50, 100).

Sessions are real Flet server-side sessions running the app's own session ``main``
(``fletchat.ui.make_session_main``: ChatView, pubsub subscription, ``page.update()`` diffing, and
msgpack encoding of every outgoing patch exactly as flet-web's connection does) on a stand-in
connection that, instead of writing to a browser's WebSocket, notes when a patch carrying the
message is ready to go out. That is everything the host does per session; the browser's own
rendering is not included (browsers are far too heavy for N = 100 tabs on 2 cores).

Latency: from ``HubSession.send`` on the host to the patch for the *last* session being encoded.
Memory per session: Python heap (tracemalloc) held after N sessions mounted, divided by N.

Baseline, same run: a bare ``flet.pubsub.PubSubHub`` with N async topic subscribers that only note
the time (what Flet's pubsub alone costs), and the heap each subscriber holds.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .common import percentile, row

TOPIC = "fletchat"


def _make_conn_class():
    import msgpack
    from flet.controls.base_control import BaseControl
    from flet.messaging.connection import Connection
    from flet.messaging.protocol import configure_encode_object_for_msgpack

    encode = configure_encode_object_for_msgpack(BaseControl)

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
            body = msgpack.packb([message.action, message.body], default=encode)
            self.bytes_out += len(body) + 1
            if self.marker is not None and self.marker in body:
                self.sink.setdefault(self.marker.decode(), []).append(time.perf_counter())
                self.marker = None

    return BenchConnection


async def _app_fanout(ns: list[int], reps: int, tmp: Path) -> dict[int, dict[str, float]]:
    from flet.controls.context import _context_page
    from flet.messaging.protocol import Message, MessageAction, RegisterClientResponseBody
    from flet.messaging.session import Session
    from flet.pubsub.pubsub_hub import PubSubHub

    from fletchat.hub import Hub, HubSession
    from fletchat.store import Store
    from fletchat.ui import make_session_main

    Conn = _make_conn_class()
    loop = asyncio.get_running_loop()
    out: dict[int, dict[str, float]] = {}
    with ThreadPoolExecutor(4) as executor:
        # the first round (key 0) warms imports and caches and is not reported
        for key, n in [(0, 1), *((n, n) for n in ns)]:
            hub = Hub(f"host{key}", "web-host", store=Store.open(tmp / f"h{key}.db"))
            pubsub = PubSubHub(loop=loop, executor=executor)
            sink: dict[str, list[float]] = {}
            session_main = make_session_main(lambda hub=hub: hub, device="browser")
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            conns, sessions = [], []
            for _ in range(n):
                conn = Conn(loop, executor, pubsub, sink)
                session = Session(conn)
                # what flet-web does for a new tab: page size from the client, the register
                # response with the page patch (mounts the page), then the session's main
                session.apply_page_patch({"width": 1280, "height": 800})
                conn.send_message(Message(MessageAction.REGISTER_CLIENT, RegisterClientResponseBody(
                    session_id=session.id, page_patch=session.get_page_patch(), error="")))
                _context_page.set(session.page)
                await session_main(session.page)
                conns.append(conn)
                sessions.append(session)
            await asyncio.sleep(0.2)
            gc.collect()
            per_session = (tracemalloc.get_traced_memory()[0] - before) / n
            tracemalloc.stop()
            sender = HubSession(hub, device="headless")
            sender.join("Sender")
            await asyncio.sleep(0.3)
            lat = []
            for r in range(reps):
                marker = f"fan{key}x{r}zz"
                for c in conns:
                    c.marker = marker.encode()
                t0 = time.perf_counter()
                sender.send(marker)
                deadline = time.monotonic() + 10
                while len(sink.get(marker, [])) < n and time.monotonic() < deadline:
                    await asyncio.sleep(0.0005)
                got = sink.get(marker, [])
                if len(got) < n:
                    raise RuntimeError(f"only {len(got)} of {n} sessions got the message")
                lat.append(max(got) - t0)
                await asyncio.sleep(0.02)
            out[key] = {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                        "mem": per_session, "bytes": sum(c.bytes_out for c in conns) / n}
            for s in sessions:
                s.close()
            hub.close()
    return out


async def _bare_fanout(ns: list[int], reps: int) -> dict[int, dict[str, float]]:
    from flet.pubsub.pubsub_hub import PubSubHub

    loop = asyncio.get_running_loop()
    out: dict[int, dict[str, float]] = {}
    with ThreadPoolExecutor(4) as executor:
        for n in ns:
            hub = PubSubHub(loop=loop, executor=executor)
            sink: dict[str, list[float]] = {}
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for i in range(n):
                async def handler(topic: str, msg: Any, sink=sink) -> None:
                    sink.setdefault(msg, []).append(time.perf_counter())

                hub.subscribe_topic(f"s{i}", TOPIC, handler)
            per_sub = (tracemalloc.get_traced_memory()[0] - before) / n
            tracemalloc.stop()
            lat = []
            for r in range(reps):
                marker = f"bare{n}x{r}"
                t0 = time.perf_counter()
                hub.send_all_on_topic(TOPIC, marker)
                while len(sink.get(marker, [])) < n:
                    await asyncio.sleep(0.0005)
                lat.append(max(sink[marker]) - t0)
                await asyncio.sleep(0.005)
            out[n] = {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "mem": per_sub}
    return out


def run(quick: bool) -> dict[str, dict[str, Any]]:
    ns = [1, 10, 50] if quick else [1, 10, 50, 100]
    reps = 5 if quick else 30
    bare = asyncio.run(_bare_fanout(ns, reps))
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        app = asyncio.run(_app_fanout(ns, reps, Path(tmp)))
    rows = []
    for n in ns:
        rows.append(row(f"N={n}: send -> last session's patch encoded, p50", app[n]["p50"] * 1000,
                        bare[n]["p50"] * 1000, unit="ms", baseline_name="bare PubSubHub fan-out",
                        n=reps))
        rows.append(row(f"N={n}: p99", app[n]["p99"] * 1000, bare[n]["p99"] * 1000, unit="ms",
                        baseline_name="bare PubSubHub fan-out", n=reps))
        rows.append(row(f"N={n}: heap per session", app[n]["mem"] / 1024, bare[n]["mem"] / 1024,
                        unit="KiB", baseline_name="bare PubSubHub subscriber", n=n,
                        note=f"{app[n]['bytes'] / 1024:.1f} KiB sent per session (msgpack)"))
    return {"fanout": {"rows": rows, "notes": [
        ("server-side Flet sessions running the app's session main on a stand-in connection"
         " (flet-web's msgpack encoding, no socket, no browser).")]}}
