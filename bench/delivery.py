"""Figures 3 and 4: delivery latency and throughput, 1 sender -> 4 peers, on loopback.

Five real peers in one process and one event loop: each is ``fletchat.hub.Hub`` (with its SQLite
store, as in the app) + ``fletchat.mesh.Mesh`` on 127.0.0.1, fully meshed exactly as discovery
would leave them. One ``HubSession`` sends; hub listeners on the other four take the arrival time
(``time.perf_counter``, one clock). Latency = until the *last* of the four has the message.

Baseline, same loop, same run: raw ``websockets`` — the sender writes one JSON frame of the same
size to four plain connections and four plain handlers ``json.loads`` it (the transport floor of
the same topology, without validation, dedupe, relays, acks or storage).

Throughput: the sender offers a rising rate; the figure is the highest rate at which every message
reached all four, no connection dropped, and p50 latency stayed within 2x the unloaded p50. The
app's flood limit (``protocol.RATE_FRAMES_PER_SECOND`` per connection) is lifted for the capacity
search and then checked separately at a rate above it.

The peers use TLS 1.3 and signed messages as the app does (``fletchat.trust``); the baseline is
plain ws:// — the cost of security is part of the ratio.

One process on a 2-core machine: the five peers share one core, so these are upper bounds on cost.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import percentile, row

N_PEERS = 5


class _Cluster:
    """Five hubs + meshes on loopback, fully connected."""

    def __init__(self, tmp: Path, rate: float | None = None, burst: float | None = None,
                 secure: bool = True) -> None:
        self.tmp = tmp
        self.secure = secure  # False: the same mesh without TLS and signatures (a baseline)
        self.rate, self.burst = rate, burst
        self.nodes: list[tuple[Any, Any]] = []
        self.arrivals: dict[str, dict[int, float]] = {}
        self.downs = 0
        self.trusts: list[Any] = []

    async def start(self) -> None:
        from fletchat.hub import Hub, HubSession
        from fletchat.mesh import MeshSettings
        from fletchat.model import KIND_CHAT, Message, Peer, new_id
        from fletchat.node import mesh_for_hub
        from fletchat.peer.connection import Limits
        from fletchat.store import Store
        from fletchat.trust import Trust

        extra: dict[str, float] = {}
        if self.rate is not None:
            extra = {"limits": Limits(frames_per_second=self.rate,
                                      frame_burst=self.burst or self.rate)}
        for k in range(N_PEERS):
            pid = new_id()
            data = self.tmp / f"p{k}"
            data.mkdir(parents=True)
            # wired as fletchat.node.Node does: identity (TLS, signed messages), store, mesh
            trust = Trust.open(data, pid) if self.secure else None
            if trust is not None:
                self.trusts.append(trust)
            hub = Hub(pid, "headless", store=Store.open(data / "history.db"), trust=trust)

            def on_down(peer, reason, down=hub.peer_down) -> None:
                self.downs += 1
                down(peer, reason)

            hub.peer_down = on_down
            mesh = mesh_for_hub(hub, Peer(pid, f"P{k}", "headless"), trust,
                                MeshSettings(host="127.0.0.1", port=0, **extra))
            await mesh.start()
            if k > 0:
                def listener(ev, k=k) -> None:
                    if isinstance(ev, Message) and ev.kind == KIND_CHAT and ev.text[:1] == "m":
                        self.arrivals.setdefault(ev.text, {})[k] = time.perf_counter()
                hub.add_listener(listener)
            self.nodes.append((hub, mesh))
        for i, (_, a) in enumerate(self.nodes):
            for _, b in self.nodes[i + 1:]:
                a.add_peer_address("127.0.0.1", b.port, b.me.id)
        deadline = time.monotonic() + 20
        while any(len(m.peers()) < N_PEERS - 1 for _, m in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the 5 loopback peers did not connect")
            await asyncio.sleep(0.05)
        self.session = HubSession(self.nodes[0][0], device="headless")
        self.session.join("Sender")
        await asyncio.sleep(0.5)  # joins, have/ack exchanges settle

    def send(self, text: str) -> None:
        self.session.send(text)

    def connected(self) -> bool:
        return all(len(m.peers()) == N_PEERS - 1 for _, m in self.nodes)

    async def stop(self) -> None:
        for hub, mesh in self.nodes:
            await mesh.stop()
            hub.close()
        for trust in self.trusts:
            trust.close()


class _Raw:
    """Baseline: one sender, four plain websockets connections on loopback, same loop."""

    def __init__(self) -> None:
        self.arrivals: dict[str, dict[int, float]] = {}
        self.servers: list[Any] = []
        self.clients: list[Any] = []

    async def start(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.asyncio.server import serve

        for k in range(1, N_PEERS):
            async def handler(ws, k=k) -> None:
                async for raw in ws:
                    text = json.loads(raw)["msg"]["text"]
                    self.arrivals.setdefault(text, {})[k] = time.perf_counter()

            srv = await serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None)
            self.servers.append(srv)
            port = srv.sockets[0].getsockname()[1]
            self.clients.append(
                await connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None)
            )

    def send(self, text: str) -> None:
        from fletchat.model import Message

        frame = json.dumps({"v": 1, "type": "msg", "msg": Message.chat("Sender", text, "x" * 32)
                            .to_dict()})
        for ws in self.clients:
            asyncio.get_running_loop().create_task(ws.send(frame))

    def connected(self) -> bool:
        return True

    async def stop(self) -> None:
        for ws in self.clients:
            await ws.close()
        for srv in self.servers:
            srv.close()
            await srv.wait_closed()


async def _paced(target, n: int, rate: float, tag: str) -> dict[str, float]:
    """Send ``n`` messages at ``rate``/s; return text -> send time."""
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    i = 0
    while i < n:
        due = int((time.perf_counter() - t0) * rate) + 1
        while i < min(due, n):
            text = f"m{tag}-{i}"
            sent[text] = time.perf_counter()
            target.send(text)
            i += 1
        await asyncio.sleep(min(0.01, 1 / rate))
    return sent


async def _collect(target, sent: dict[str, float], timeout: float = 5.0) -> tuple[list[float], list[float], int]:
    """(latency until all four, latency per receiver, messages missing somewhere)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(target.arrivals.get(t, {})) == N_PEERS - 1 for t in sent):
            break
        await asyncio.sleep(0.02)
    all4, each, missing = [], [], 0
    for text, t in sent.items():
        got = target.arrivals.get(text, {})
        each += [a - t for a in got.values()]
        if len(got) == N_PEERS - 1:
            all4.append(max(got.values()) - t)
        else:
            missing += 1
    return all4, each, missing


async def _latency(target, n: int, gap: float, tag: str) -> tuple[list[float], list[float], int]:
    sent = {}
    for i in range(n):
        text = f"m{tag}-{i}"
        sent[text] = time.perf_counter()
        target.send(text)
        await asyncio.sleep(gap)
    return await _collect(target, sent)


async def _capacity(target, base_p50: float, rates: list[float], step_s: float) -> tuple[float, list[dict[str, Any]]]:
    """Highest offered rate with everything delivered, still connected, p50 <= 2x unloaded."""
    best = 0.0
    steps = []
    for k, rate in enumerate(rates):
        sent = await _paced(target, max(10, int(rate * step_s)), rate, f"r{k}")
        all4, _, missing = await _collect(target, sent, timeout=10.0)
        p50 = percentile(all4, 50) if all4 else None
        ok = missing == 0 and target.connected() and p50 is not None and p50 <= 2 * base_p50
        steps.append({"rate": rate, "p50_s": p50, "missing": missing, "ok": ok})
        if not ok:
            break
        best = rate
        await asyncio.sleep(0.2)
    return best, steps


async def _run(quick: bool) -> dict[str, dict[str, Any]]:
    from fletchat.protocol import RATE_BURST, RATE_FRAMES_PER_SECOND

    n = 40 if quick else 300
    gap = 0.01
    rates = [50, 100, 200, 400, 800] if quick else [25, 50, 100, 150, 200, 300, 400, 600, 800, 1200,
                                                     1600, 2400, 3200, 4800, 6400]
    step_s = 0.5 if quick else 2.0
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        raw = _Raw()
        await raw.start()
        try:
            await _latency(raw, 20, gap, "warm")
            raw_all4, raw_each, _ = await _latency(raw, n, gap, "lat")
            raw_p50 = percentile(raw_all4, 50)
            raw_best, raw_steps = await _capacity(raw, raw_p50, rates, step_s)
        finally:
            await raw.stop()

        cl = _Cluster(Path(tmp) / "lifted", rate=1e9, burst=1e9)
        await cl.start()
        try:
            await _latency(cl, 20, gap, "warm")
            all4, each, missing = await _latency(cl, n, gap, "lat")
            p50 = percentile(all4, 50)
            best, steps = await _capacity(cl, p50, rates, step_s)
        finally:
            await cl.stop()

        # The cost of security: the same mesh without TLS and signatures, same loop, same load.
        plain = _Cluster(Path(tmp) / "plain", rate=1e9, burst=1e9, secure=False)
        await plain.start()
        try:
            await _latency(plain, 20, gap, "warm")
            plain_all4, _, _ = await _latency(plain, n, gap, "lat")
        finally:
            await plain.stop()

        # The app as shipped: the flood limit on. Offer twice the limit until the burst is spent.
        dflt = _Cluster(Path(tmp) / "default")
        await dflt.start()
        over = 2 * RATE_FRAMES_PER_SECOND
        secs = 2.0 if quick else RATE_BURST / (over - RATE_FRAMES_PER_SECOND) + 3.0
        try:
            sent = await _paced(dflt, int(over * secs), over, "d")
            d_all4, _, d_missing = await _collect(dflt, sent, timeout=5.0)
            d_downs = dflt.downs
        finally:
            await dflt.stop()

    lat_rows = [
        row("all 4 have it, p50", percentile(all4, 50) * 1000, raw_p50 * 1000, unit="ms",
            baseline_name="raw websockets 1->4, one-way", n=len(all4), target_max_ratio=3),
        row("all 4 have it, p99", percentile(all4, 99) * 1000, percentile(raw_all4, 99) * 1000,
            unit="ms", baseline_name="raw websockets 1->4, one-way", n=len(all4),
            target_max_ratio=3),
        row("per receiver, p50", percentile(each, 50) * 1000, percentile(raw_each, 50) * 1000,
            unit="ms", baseline_name="raw websockets 1->4, one-way", n=len(each),
            target_max_ratio=3),
        row("all 4 have it, p50, TLS + signed", percentile(all4, 50) * 1000,
            percentile(plain_all4, 50) * 1000, unit="ms",
            baseline_name="the same mesh without TLS and signatures", n=len(all4)),
        row("all 4 have it, p99, TLS + signed", percentile(all4, 99) * 1000,
            percentile(plain_all4, 99) * 1000, unit="ms",
            baseline_name="the same mesh without TLS and signatures", n=len(all4)),
    ]
    thr_rows = [
        row("sustained rate, flood limit lifted", float(best), float(raw_best), unit="msg/s",
            baseline_name="raw websockets 1->4, same criterion",
            note="criterion: all delivered, no drop, p50 <= 2x unloaded"),
        row(f"offered {over:g} msg/s with the shipped flood limit: delivered",
            float(len(d_all4)), float(len(d_all4) + d_missing), unit="msg",
            baseline_name="sent", n=len(d_all4) + d_missing,
            note=f"{d_downs} peer-down events; limit {RATE_FRAMES_PER_SECOND:g} frames/s, "
                 f"burst {RATE_BURST:g}, per connection"),
    ]
    return {
        "delivery": {"rows": lat_rows, "notes": [
            ("5 peers (Hub+SQLite store+Mesh over TLS, signed messages) in one process on loopback, messages 10 ms apart;"
            f" {missing} of {n} not delivered to all 4."),
        ]},
        "throughput": {"rows": thr_rows, "steps": steps, "baseline_steps": raw_steps,
                       "notes": ["all five peers share one event loop / one core."]},
    }


def run(quick: bool) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(quick))
