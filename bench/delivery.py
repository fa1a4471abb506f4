"""Figures 3 and 4: delivery latency and throughput, 1 sender -> 4 peers, on loopback.

Five real peers in one process and one event loop: each is ``fletchat.hub.Hub`` (with its SQLite
store, as in the app) + its mesh on 127.0.0.1 (built by ``common.start_peer_mesh``, wired as the
node does), fully meshed exactly as discovery would leave them. One ``HubSession`` sends; hub
listeners on the other four take the arrival time (``time.perf_counter``, one clock). Latency =
until the *last* of the four has the message.

Baseline, same loop, same run: raw ``websockets`` — the sender writes one JSON frame of the same
size to four plain connections and four plain handlers ``json.loads`` it (the transport floor of
the same topology, without validation, dedupe, relays, acks or storage). A second comparison, the
same mesh without TLS and signatures, prices security alone.

Every figure is repeated (``Plan.reps``); in each repetition the app and the baseline run back to
back, in alternating order, so load that drifts hits both; a ratio is the median of the
per-repetition ratios, and min / median / max are reported.

Throughput is *capacity*: the sender offers a rate for a sustained window and the step passes when
the system keeps up — the sender kept pace (it shares the loop: its last message went out at most
50 ms or 10 % of the window late), >= 99 %
of what was offered reached all four within ``KEEP_UP_GRACE`` after the window closed, the backlog
did not grow over the window, everything arrived in the end and no connection dropped. The same
criterion for the app and the baseline. Short rising probes find the bracket; sustained windows
bisect it; the capacity is the offered rate of the highest sustained window that passed. A rate
fails only when two windows at it in a row fail (a moment of starvation by other work is not
capacity). The app's flood limit (``protocol.RATE_FRAMES_PER_SECOND`` per connection) is lifted
for this and checked separately at a rate above it.

Where the time goes: one more app run with ``breakdown.Spans`` (perf_counter spans around the real
code paths, behaviour unchanged) and the loop's idle time measured, so the per-message parts add
up to the loop's busy time per message.

One process on a 2-core machine: the five peers share one core, so these are upper bounds on cost.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .breakdown import Spans
from .common import loadavg, percentile, row, spread, spread_row, start_peer_mesh

N_PEERS = 5
KEEP_UP_GRACE = 0.1  # s after the window closes: >= 99 % must have reached all four by then
KEEP_UP_FRACTION = 0.99
OFFERED_LATE_S = 0.05  # the last message may go out this late (or 10 % of the window, if more)
BACKLOG_SLACK_S = 0.05  # backlog may grow by this many seconds' worth of messages, no more
SHORT_SWITCH_S = 0.0005  # the breakdown's what-if: GIL switch interval 0.5 ms instead of 5 ms
LATENCY_BOUND_MS = 50.0  # a delay a person would notice
FIRST_RATE = 50.0
MAX_RATE = 25_600.0
RAW = "raw websockets"
APP = "app"


@dataclass(frozen=True)
class Plan:
    """How much to measure: quick (CI smoke, seconds) or full."""

    reps: int
    latency_n: int
    probe_factor: float
    gap: float
    probe_s: float
    window_s: float
    refine: int
    drain_s: float
    flood_s: float | None  # None: until the flood limit's burst is spent, plus 3 s
    what_if: bool  # the breakdown's GIL switch-interval experiment


SETTLE_MAX_S = 90.0  # after a capacity search, how long to wait for the receivers to catch up

# quick: a smoke test of the same machinery (structure, not figures to quote) in ~15 s
QUICK = Plan(reps=3, latency_n=20, probe_factor=4, gap=0.01, probe_s=0.1, window_s=0.3,
             refine=0, drain_s=1.0, flood_s=1.0, what_if=False)
FULL = Plan(reps=3, latency_n=200, probe_factor=2, gap=0.01, probe_s=1.0, window_s=5.0,
            refine=2, drain_s=10.0, flood_s=None, what_if=True)


class Target(Protocol):
    name: str
    arrivals: dict[str, dict[int, float]]
    downs: int

    def send(self, text: str) -> None: ...

    def connected(self) -> bool: ...

    def settled(self) -> bool: ...


class _Cluster:
    """Five hubs + meshes on loopback, fully connected."""

    def __init__(self, tmp: Path, name: str, rate: float | None = None,
                 burst: float | None = None, secure: bool = True) -> None:
        self.tmp = tmp
        self.name = name
        self.secure = secure  # False: the same mesh without TLS and signatures (a baseline)
        self.rate, self.burst = rate, burst
        self.nodes: list[tuple[Any, Any]] = []
        self.arrivals: dict[str, dict[int, float]] = {}
        self.downs = 0
        self.trusts: list[Any] = []

    async def start(self) -> None:
        from fletchat.acceptance import QuotaLimits
        from fletchat.hub import Hub, HubSession
        from fletchat.model import KIND_CHAT, Message, Peer, new_id
        from fletchat.store import Store
        from fletchat.trust import Trust

        extra: dict[str, float] = {}
        if self.rate is not None:
            extra = {"rate": self.rate, "burst": self.burst or self.rate}
        for k in range(N_PEERS):
            pid = new_id()
            data = self.tmp / f"p{k}"
            data.mkdir(parents=True)
            # as fletchat.node.Node does: identity (TLS, signed messages), store, mesh
            trust = Trust.open(data, pid) if self.secure else None
            if trust is not None:
                self.trusts.append(trust)
            # With the flood limit lifted (``rate``) the per-origin quotas go too: throughput
            # measures what the mesh can carry, not the budgets that refuse a flood.
            quotas = QuotaLimits.lifted() if self.rate is not None else QuotaLimits()
            hub = Hub(pid, "headless", store=Store.open(data / "history.db"), trust=trust,
                      quota_limits=quotas)
            mesh = await start_peer_mesh(hub, Peer(pid, f"P{k}", "headless"), trust,
                                         on_down=self._down, **extra)
            if k > 0:
                def listener(ev, k=k) -> None:
                    if isinstance(ev, Message) and ev.kind == KIND_CHAT and ev.text[:1] == "m":
                        self.arrivals.setdefault(ev.text, {})[k] = time.perf_counter()
                hub.add_listener(listener)
            self.nodes.append((hub, mesh))
        for i, (_, a) in enumerate(self.nodes):
            for _, b in self.nodes[i + 1:]:
                a.add_peer_address("127.0.0.1", b.port, b.me.id)
        if not await _until(self.connected, 20):
            raise RuntimeError("the 5 loopback peers did not connect")
        self.session = HubSession(self.nodes[0][0], device="headless")
        self.session.join("Sender")
        await asyncio.sleep(0.5)  # joins, have/ack exchanges settle

    def _down(self) -> None:
        self.downs += 1

    def send(self, text: str) -> None:
        self.session.send(text)

    def connected(self) -> bool:
        return all(len(m.peers()) == N_PEERS - 1 for _, m in self.nodes)

    def settled(self) -> bool:
        """Every receiver has stored every message the sender wrote (what an overload's closed
        connections left behind comes back by catch-up), and no link has frames waiting to go
        out or catch-up pages waiting to be judged."""
        sender = self.nodes[0][0]
        wrote = sender.store.have_summary().get(sender.peer_id, 0)
        idle = all(link.pages is None and link.conn.backlog() == 0
                   for _, mesh in self.nodes for link in mesh._core.links)
        return idle and all(hub.store.have_summary().get(sender.peer_id, 0) >= wrote
                            for hub, _ in self.nodes[1:])

    async def stop(self) -> None:
        for hub, mesh in self.nodes:
            await mesh.stop()
            hub.close()
        for trust in self.trusts:
            trust.close()


class _Raw:
    """Baseline: one sender, four plain websockets connections on loopback, same loop."""

    name = RAW

    def __init__(self) -> None:
        self.arrivals: dict[str, dict[int, float]] = {}
        self.servers: list[Any] = []
        self.clients: list[Any] = []
        self.downs = 0

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

    def settled(self) -> bool:
        return True  # nothing is stored or caught up: what arrived is all there is

    async def stop(self) -> None:
        for ws in self.clients:
            await ws.close()
        for srv in self.servers:
            srv.close()
            await srv.wait_closed()


async def _until(check, timeout: float, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


def _all_in(target: Target, sent: dict[str, float]) -> bool:
    return all(len(target.arrivals.get(t, {})) == N_PEERS - 1 for t in sent)


async def _paced(target: Target, n: int, rate: float, tag: str) -> dict[str, float]:
    """Send ``n`` messages at ``rate``/s (message i is due at i/rate); return text -> send time."""
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
        if i < n:
            await asyncio.sleep(min(0.01, 1 / rate))
    return sent


def _latencies(target: Target, sent: dict[str, float]) -> tuple[list[float], list[float], int]:
    """(latency until all four, latency per receiver, messages missing somewhere)."""
    all4, each, missing = [], [], 0
    for text, t in sent.items():
        got = target.arrivals.get(text, {})
        each += [a - t for a in got.values()]
        if len(got) == N_PEERS - 1:
            all4.append(max(got.values()) - t)
        else:
            missing += 1
    return all4, each, missing


async def _latency(target: Target, n: int, gap: float, tag: str) -> dict[str, Any]:
    """``n`` messages ``gap`` apart (an unloaded system): latency percentiles."""
    sent = {}
    for i in range(n):
        text = f"m{tag}-{i}"
        sent[text] = time.perf_counter()
        target.send(text)
        await asyncio.sleep(gap)
    await _until(lambda: _all_in(target, sent), 5.0)
    all4, each, missing = _latencies(target, sent)
    _forget(target, sent)
    return {"p50": percentile(all4, 50) if all4 else None,
            "p99": percentile(all4, 99) if all4 else None,
            "each_p50": percentile(each, 50) if each else None,
            "n": len(all4), "n_each": len(each), "missing": missing}


def _forget(target: Target, sent: dict[str, float]) -> None:
    for text in sent:
        target.arrivals.pop(text, None)


async def _step(target: Target, rate: float, window: float, tag: str, plan: Plan) -> dict[str, Any]:
    """Offer ``rate`` for ``window`` seconds; did the target keep up?"""
    n = max(10, round(rate * window))
    downs = target.downs
    t_step = time.monotonic()
    sent = await _paced(target, n, rate, tag)
    times = list(sent.values())
    t_first, t_last = times[0], times[-1]
    offered = n / (t_last - t_first + 1 / rate)  # n messages due 1/rate apart span n intervals
    late = (t_last - t_first) - (n - 1) / rate  # the sender shares the loop: did it keep pace?
    drained = await _until(lambda: _all_in(target, sent), plan.drain_s)
    all4, _, missing = _latencies(target, sent)
    done = sorted(max(target.arrivals[t].values()) for t in sent
                  if len(target.arrivals.get(t, {})) == N_PEERS - 1)
    in_time = sum(1 for d in done if d <= t_last + KEEP_UP_GRACE)

    def backlog(at: float) -> int:  # sent by ``at`` minus delivered to all four by ``at``
        return sum(1 for s in times if s <= at) - sum(1 for d in done if d <= at)

    mid_backlog, end_backlog = backlog((t_first + t_last) / 2), backlog(t_last)
    growing = end_backlog > mid_backlog + max(2.0, rate * BACKLOG_SLACK_S)
    dropped = target.downs - downs
    ok = (late <= max(OFFERED_LATE_S, 0.1 * window) and in_time >= KEEP_UP_FRACTION * n
          and not growing
          and missing == 0 and dropped == 0 and target.connected())
    _forget(target, sent)
    if not target.connected():  # overload closed a connection ("too slow"): let it come back
        await _until(target.connected, 20)
    if not ok:
        await asyncio.sleep(0.1)  # after an overload, let queues and the store writers settle
    return {
        "rate": rate, "window_s": window, "sent": n,
        "offered_per_s": round(offered, 1), "sender_late_s": round(late, 3),
        "delivered_per_s": round(in_time / (t_last - t_first + KEEP_UP_GRACE), 1),
        "in_time_fraction": round(in_time / n, 4),
        "backlog_mid": mid_backlog, "backlog_end": end_backlog,
        "p50_ms": percentile(all4, 50) * 1000 if all4 else None,
        "p99_ms": percentile(all4, 99) * 1000 if all4 else None,
        "missing": missing, "drained": drained, "dropped": dropped, "ok": ok,
        "step_s": round(time.monotonic() - t_step, 2),
    }


async def _capacity(target: Target, plan: Plan, start: float, tag: str) -> dict[str, Any]:
    """Rising probes from ``start`` until one fails, then sustained windows bisecting.

    A rate counts as too much only when two windows at it in a row fail: other work on the machine
    can starve the process for a moment (both sides alike), which says nothing about capacity."""
    steps: list[dict[str, Any]] = []

    async def attempt(rate: float, window: float, phase: str) -> bool:
        for retry in (False, True):
            st = await _step(target, rate, window, f"{tag}{phase[0]}{len(steps)}", plan)
            steps.append({"phase": phase, "retry": retry, **st})
            if st["ok"]:
                return True
        return False

    lo, hi, rate = None, None, start
    best: float | None = None
    while rate <= MAX_RATE:
        if not await attempt(rate, plan.probe_s, "probe"):
            hi = rate
            break
        lo, rate = rate, rate * plan.probe_factor
    if hi is None:
        hi = MAX_RATE * 2  # never saturated: the figure is a lower bound
    cand = lo if lo is not None else start / 2
    for _ in range(4):  # the bracket's low end must hold for a sustained window too
        if await attempt(cand, plan.window_s, "sustained"):
            best = lo = cand
            break
        hi, cand = cand, cand / 2
    if best is not None and lo is not None:
        for _ in range(plan.refine):
            mid = math.sqrt(lo * hi)
            if await attempt(mid, plan.window_s, "sustained"):
                best = lo = mid
            else:
                hi = mid
    passed = [s for s in steps if s["phase"] == "sustained" and s["ok"]]
    top = max(passed, key=lambda s: s["offered_per_s"]) if passed else None
    brisk = [s["offered_per_s"] for s in passed
             if s["p99_ms"] is not None and s["p99_ms"] <= LATENCY_BOUND_MS]
    return {
        "capacity": top["offered_per_s"] if top else 0.0,
        "within_latency_bound": max(brisk, default=0.0),
        "p99_ms_at_capacity": top["p99_ms"] if top else None,
        "first_step_failed": not steps[0]["ok"] and not steps[1]["ok"],
        "steps": steps,
    }


async def _loop_busy(target: Target, n: int, gap: float, tag: str,
                     spans: Spans | None = None, locks: tuple = (), calls: tuple = ()
                     ) -> dict[str, Any]:
    """One latency run while measuring the loop's busy time (wall minus time in select) and the
    loop thread's CPU; with ``spans``, also the breakdown."""
    loop = asyncio.get_running_loop()
    selector = loop._selector  # type: ignore[attr-defined]  # bench-only: idle time of the loop
    idle = [0.0]
    select = selector.select

    def timed_select(timeout=None):
        t0 = time.perf_counter()
        try:
            return select(timeout)
        finally:
            idle[0] += time.perf_counter() - t0

    selector.select = timed_select
    w0, c0 = time.perf_counter(), time.thread_time()
    try:
        if spans is not None:
            with spans.install(locks, calls):
                lat = await _latency(target, n, gap, tag)
        else:
            lat = await _latency(target, n, gap, tag)
    finally:
        del selector.select  # back to the class's method
    wall = time.perf_counter() - w0
    return {"busy_s": wall - idle[0], "loop_cpu_s": time.thread_time() - c0, "latency": lat}


async def _breakdown(app: _Cluster, raw: _Raw, plan: Plan) -> dict[str, Any]:
    n = plan.latency_n
    plain_app = await _loop_busy(app, n, plan.gap, "bk-plain")
    plain_raw = await _loop_busy(raw, n, plan.gap, "bk-raw")
    # What if the loop got the GIL back sooner? SQLite calls release the GIL; a store-writer
    # thread may then hold it up to the switch interval (5 ms by default) before the loop resumes.
    default_switch = sys.getswitchinterval()
    short_switch = None
    if plan.what_if:
        sys.setswitchinterval(SHORT_SWITCH_S)
        try:
            short_switch = await _loop_busy(app, n, plan.gap, "bk-switch")
        finally:
            sys.setswitchinterval(default_switch)
    spans = Spans()
    # the store's one lock, shared by the loop's reads and the writer thread's commits
    locks = tuple((hub.store, "_lock", "store lock wait") for hub, _ in app.nodes
                  if hub.store is not None)
    # the mesh holds hub.receive bound since construction: wrap it where it is held
    calls = tuple((mesh, "_on_message", "hub acceptance (dedupe, clock, queue for store)")
                  for _, mesh in app.nodes)
    prof = await _loop_busy(app, n, plan.gap, "bk-prof", spans, locks, calls)
    rep = spans.report(n, prof["busy_s"], prof["loop_cpu_s"])

    def per_msg(run: dict[str, Any], key: str) -> float:
        return run[key] / n * 1e6

    rep.update({
        "unprofiled": {
            "app_loop_busy_us_per_msg": per_msg(plain_app, "busy_s"),
            "raw_loop_busy_us_per_msg": per_msg(plain_raw, "busy_s"),
            "app_loop_cpu_us_per_msg": per_msg(plain_app, "loop_cpu_s"),
            "raw_loop_cpu_us_per_msg": per_msg(plain_raw, "loop_cpu_s"),
            "app_p50_ms": (plain_app["latency"]["p50"] or 0) * 1000,
            "raw_p50_ms": (plain_raw["latency"]["p50"] or 0) * 1000,
        },
        "switch_interval": short_switch and {
            "default_s": default_switch, "short_s": SHORT_SWITCH_S,
            "app_p50_ms_short": (short_switch["latency"]["p50"] or 0) * 1000,
            "app_loop_busy_us_per_msg_short": per_msg(short_switch, "busy_s"),
        },
        "note": ("exclusive time per part, summed over the 5 peers, per message sent (1 sign, "
                 "4 verifies, TLS writes and reads of the message and its 4 acks...); wall time "
                 "includes preemption by other work on the machine, CPU time does not; loop "
                 "busy = wall minus time in select"),
    })
    return rep


async def _shipped_flood_limit(tmp: Path, plan: Plan) -> dict[str, Any]:
    """The app as shipped, flood limit on: offer twice the limit until the burst is spent."""
    from fletchat.protocol import RATE_BURST, RATE_FRAMES_PER_SECOND

    dflt = _Cluster(tmp, "app, shipped flood limit")
    await dflt.start()
    over = 2 * RATE_FRAMES_PER_SECOND
    secs = plan.flood_s or RATE_BURST / (over - RATE_FRAMES_PER_SECOND) + 3.0
    try:
        sent = await _paced(dflt, int(over * secs), over, "d")
        await _until(lambda: _all_in(dflt, sent), 5.0)
        all4, _, missing = _latencies(dflt, sent)
        downs = dflt.downs
    finally:
        await dflt.stop()
    return row(f"offered {over:g} msg/s with the shipped flood limit: delivered",
               float(len(all4)), float(len(all4) + missing), unit="msg",
               baseline_name="sent", n=len(all4) + missing,
               note=f"{downs} peer-down events; limit {RATE_FRAMES_PER_SECOND:g} frames/s, "
                    f"burst {RATE_BURST:g}, per connection")


async def _run(plan: Plan) -> dict[str, dict[str, Any]]:
    load_start = loadavg()
    lat: dict[str, list[dict[str, Any]]] = {APP: [], RAW: [], "plain": []}
    cap: dict[str, list[dict[str, Any]]] = {APP: [], RAW: []}
    loads: list[list[float] | None] = []
    phases: dict[str, float] = {}
    clock = [time.monotonic()]

    def phase(name: str) -> None:  # wall seconds per phase, to keep quick mode in its budget
        now = time.monotonic()
        phases[name] = round(phases.get(name, 0.0) + now - clock[0], 2)
        clock[0] = now
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        raw = _Raw()
        app = _Cluster(Path(tmp) / "lifted", APP, rate=1e9, burst=1e9)
        # the cost of security: the same mesh without TLS and signatures
        plain = _Cluster(Path(tmp) / "plain", "plain", rate=1e9, burst=1e9, secure=False)
        targets: dict[str, Target] = {RAW: raw, APP: app, "plain": plain}
        await asyncio.gather(raw.start(), app.start(), plain.start())
        phase("start")
        try:
            for t in targets.values():
                await _latency(t, 10, plan.gap, "warm")
            phase("warm-up")
            for rep in range(plan.reps):
                loads.append(loadavg())
                order = [RAW, APP, "plain"] if rep % 2 == 0 else ["plain", APP, RAW]
                for name in order:
                    lat[name].append(await _latency(targets[name], plan.latency_n, plan.gap,
                                                    f"lat{rep}"))
                phase("latency")
                for name in order:
                    if name == "plain":
                        continue
                    done = [c["capacity"] for c in cap[name] if c["capacity"] > 0]
                    # later repetitions probe from a quarter of what the earlier ones found
                    start = max(FIRST_RATE, percentile(done, 50) / 4) if done else FIRST_RATE
                    cap[name].append(await _capacity(targets[name], plan, start,
                                                     f"c{rep}{name[0]}"))
                    # latency is measured on a quiet cluster: after the overload, wait until
                    # every receiver has stored everything (how long that took is reported)
                    t_settle = time.monotonic()
                    settled = await _until(targets[name].settled, SETTLE_MAX_S, every=0.1)
                    cap[name][-1]["recovery_s"] = (round(time.monotonic() - t_settle, 2)
                                                   if settled else None)
                phase("capacity")
            breakdown = await _breakdown(app, raw, plan)
            phase("breakdown")
        finally:
            await plain.stop()
            await app.stop()
            await raw.stop()
        phase("stop")

        flood_row = await _shipped_flood_limit(Path(tmp) / "default", plan)
        phase("flood limit")
    load_end = loadavg()

    def ms(side: str, key: str) -> list[float]:
        return [r[key] * 1000 for r in lat[side]]

    base = "raw websockets 1->4, one-way"
    reps_note = f"median of {plan.reps} interleaved repetitions; spread min-max"
    lat_rows = [
        spread_row("all 4 have it, p50", ms(APP, "p50"), ms(RAW, "p50"), unit="ms",
                   baseline_name=base, n=plan.latency_n, target_max_ratio=3, note=reps_note),
        spread_row("all 4 have it, p99", ms(APP, "p99"), ms(RAW, "p99"), unit="ms",
                   baseline_name=base, n=plan.latency_n, target_max_ratio=3, note=reps_note),
        spread_row("per receiver, p50", ms(APP, "each_p50"), ms(RAW, "each_p50"), unit="ms",
                   baseline_name=base, n=plan.latency_n * (N_PEERS - 1), target_max_ratio=3,
                   note=reps_note),
        spread_row("all 4 have it, p50, TLS + signed", ms(APP, "p50"), ms("plain", "p50"),
                   unit="ms", baseline_name="the same mesh without TLS and signatures",
                   n=plan.latency_n, note=reps_note),
        spread_row("all 4 have it, p99, TLS + signed", ms(APP, "p99"), ms("plain", "p99"),
                   unit="ms", baseline_name="the same mesh without TLS and signatures",
                   n=plan.latency_n, note=reps_note),
    ]
    criterion = (f"keeps up: the sender kept pace (last message at most "
                 f"{max(OFFERED_LATE_S, 0.1 * plan.window_s) * 1000:.0f} ms late), >= "
                 f"{KEEP_UP_FRACTION:.0%} at all 4 within {KEEP_UP_GRACE * 1000:.0f} ms of a "
                 f"{plan.window_s:g} s window's end, backlog not growing, none lost, no drop")
    p99_pairs = [(a["p99_ms_at_capacity"], r["p99_ms_at_capacity"])
                 for a, r in zip(cap[APP], cap[RAW], strict=True)
                 if a["p99_ms_at_capacity"] is not None and r["p99_ms_at_capacity"] is not None]
    thr_rows = [
        spread_row("capacity, flood limit lifted (keeps up)",
                   [c["capacity"] for c in cap[APP]], [c["capacity"] for c in cap[RAW]],
                   unit="msg/s", baseline_name="raw websockets 1->4, same criterion",
                   note=f"{criterion}; {reps_note}"),
        spread_row(f"highest sustained rate kept up with p99 <= {LATENCY_BOUND_MS:g} ms",
                   [c["within_latency_bound"] for c in cap[APP]],
                   [c["within_latency_bound"] for c in cap[RAW]], unit="msg/s",
                   baseline_name="raw websockets 1->4, same criterion",
                   note=("0 when no sustained window that kept up had p99 within the bound; "
                         f"{reps_note}")),
        spread_row("p99 (all 4) at that capacity", [a for a, _ in p99_pairs],
                   [r for _, r in p99_pairs], unit="ms",
                   baseline_name="raw websockets 1->4 at its capacity",
                   note=f"repetitions where both kept up at some rate; {reps_note}"),
        flood_row,
    ]
    missing = sum(r["missing"] for r in lat[APP])
    load = {"start": load_start, "per_repetition": loads, "end": load_end}
    return {
        "delivery": {
            "rows": lat_rows,
            "repetitions": {k: v for k, v in lat.items()},
            "breakdown": breakdown,
            "loadavg": load,
            "notes": [
                ("5 peers (Hub+SQLite store+Mesh over TLS, signed messages) in one process on "
                 f"loopback, messages {plan.gap * 1000:g} ms apart; {missing} of "
                 f"{plan.latency_n * plan.reps} not delivered to all 4."),
            ],
        },
        "throughput": {
            "rows": thr_rows,
            "criterion": criterion,
            "capacity": {name: {"per_repetition": [c["capacity"] for c in runs],
                                "within_latency_bound": [c["within_latency_bound"]
                                                         for c in runs],
                                "spread": spread([c["capacity"] for c in runs]),
                                "first_step_failed": [c["first_step_failed"] for c in runs],
                                "recovery_s": [c.get("recovery_s") for c in runs],
                                "steps": [c["steps"] for c in runs]}
                         for name, runs in cap.items()},
            "loadavg": load,
            "phase_seconds": phases,
            "notes": [("all five peers share one event loop / one core; app and baseline "
                       "alternate within every repetition."),
                      ("after each capacity search, seconds until every receiver had stored "
                       "every message (None: not within "
                       f"{SETTLE_MAX_S:g} s); the next latency repetition starts then: "
                       + ", ".join(f"{name} {[c.get('recovery_s') for c in runs]}"
                                   for name, runs in cap.items()))],
        },
    }


def run(quick: bool) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(QUICK if quick else FULL))
