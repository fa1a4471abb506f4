"""Figure 16: host mode all day, N tabs x R rows shown and hundreds of messages: the collector's
pauses, with CPython's own collector and with host mode's pacing (``fletchat/gcpace.py``).

Figure 5 sends 10-20 messages per configuration; a host left open all day sends thousands, and
every few hundred CPython runs a full collection over every object of every tab (about 55 per
row shown per tab), which stops all tabs at once. Here the same tabs (figure 5's harness: real
Flet sessions on a stand-in connection) get ``messages`` messages back to back with the stock
collector, then ``messages`` more with the pacer running as host mode runs it, then the host is
left idle for the pacer's full collection. Per phase: latency from the send to the last tab's
patch (p50, p99, the longest), and every full (generation 2) collection with how long it took.

The two phases cannot be interleaved (a stock full collection comes once per few hundred
messages): the stock phase runs first, on the smaller heap. The pacer's first look at a heap it
has never seen (a full collection, as a host pays it while small, one tab at a time) is run
before its phase and reported apart.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import percentile, row


@dataclass
class Phase:
    lat: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)  # seconds each generation-2 collection took
    stall: float = 0.0  # the longest the event loop could not run (between messages too)


class LoopLag:
    """The loop's longest stall while ``phase`` is set: a task that asks to run every 5 ms.
    The sends wait for each message's last patch, so a stall between two messages (a pacer
    tick, a collection) delays no measured message; a tab's next message would wait for it."""

    def __init__(self) -> None:
        self.phase: Phase | None = None

    async def run(self) -> None:
        step = 0.005
        last, phase = time.perf_counter(), self.phase
        while True:
            await asyncio.sleep(step)
            now = time.perf_counter()
            if phase is not None and self.phase is phase:  # the whole wait inside one phase
                phase.stall = max(phase.stall, now - last - step)
            last, phase = now, self.phase


class FullCollections:
    """``gc.callbacks`` entry timing every generation-2 collection (automatic or explicit)."""

    def __init__(self) -> None:
        self.sink: list[float] | None = None
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2 or self.sink is None:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.sink.append(time.perf_counter() - self._t0)


def quick_plan(quick: bool) -> dict[str, int]:
    """``FLETCHAT_BENCH_ALLDAY="rows:tabs:messages"`` picks another size."""
    env = os.environ.get("FLETCHAT_BENCH_ALLDAY", "")
    if env:
        rows, tabs, messages = (int(x) for x in env.split(":"))
        return {"rows": rows, "tabs": tabs, "messages": messages}
    if quick:
        return {"rows": 100, "tabs": 10, "messages": 60}
    return {"rows": 1000, "tabs": 100, "messages": 400}


async def _send(tabs: Any, phase: Phase, label: str, n: int) -> None:
    for i in range(n):
        await tabs.one(f"{label}{i}zz")
        await asyncio.sleep(0.005)
    phase.lat = tabs.lat[-n:]


async def _measure(plan: dict[str, int], tmp: Path) -> dict[str, Any]:
    from fletchat.gcpace import IDLE_S, GcPacer

    from .fanout import _app_tabs, _close, _make_conn_class

    loop = asyncio.get_running_loop()
    stock, paced = Phase(), Phase()
    watch = FullCollections()
    with ThreadPoolExecutor(4) as executor:
        tabs = await _app_tabs(_make_conn_class(), loop, executor, plan["rows"], plan["tabs"],
                               tmp, "allday")
        await tabs.one("warmupzz")
        gc.collect()
        objects = len(gc.get_objects())
        gc.callbacks.append(watch)
        pacer = GcPacer()
        lag = LoopLag()
        lagging = asyncio.ensure_future(lag.run())
        try:
            watch.sink, lag.phase = stock.full, stock
            await _send(tabs, stock, "stock", plan["messages"])
            watch.sink, lag.phase = [], None
            pacer.tick()  # the first look: freeze ...
            first = time.perf_counter()
            pacer.tick()  # ... then one full collection of everything
            first = time.perf_counter() - first
            hub = tabs.hub  # type: ignore[attr-defined]
            hub.add_listener(pacer.event)
            pacer.start()
            watch.sink, lag.phase = paced.full, paced
            await _send(tabs, paced, "paced", plan["messages"])
            watch.sink, lag.phase, idle = [], None, []
            watch.sink = idle
            before = len(pacer.full_collections)
            deadline = time.monotonic() + IDLE_S + 3 * pacer.period + 2  # if one is due
            while len(pacer.full_collections) == before and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            watch.sink = None
            gc.callbacks.remove(watch)
            lagging.cancel()
            await pacer.stop()
            await _close([tabs])
    return {"stock": stock, "paced": paced, "first": first, "idle": idle, "objects": objects}


def _worst(xs: list[float], k: int = 3) -> str:
    """The ``k`` longest waits of a phase: which message (from 1) and how long."""
    top = sorted(range(len(xs)), key=lambda i: -xs[i])[:k]
    return ", ".join(f"#{i + 1} {xs[i] * 1000:.0f} ms" for i in sorted(top))


def _ms(xs: list[float]) -> float:
    return max(xs) * 1000 if xs else 0.0


def run(quick: bool) -> dict[str, dict[str, Any]]:
    plan = quick_plan(quick)
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        res = asyncio.run(_measure(plan, Path(tmp)))
    stock, paced = res["stock"], res["paced"]
    where = f"{plan['tabs']} tabs x {plan['rows']} rows, {plan['messages']} messages"
    base = "CPython's own collector (same tabs, the phase before)"
    rows = [
        row(f"{where}: longest wait, send -> last tab's patch", _ms(paced.lat), _ms(stock.lat),
            unit="ms", baseline_name=base, n=len(paced.lat), target_max=150,
            note=f"{res['objects']:,} objects tracked after the tabs opened; the longest were "
                 f"messages {_worst(paced.lat)} (paced) and {_worst(stock.lat)} (stock)"),
        row(f"{where}: longest the host's loop could not run", paced.stall * 1000,
            stock.stall * 1000, unit="ms", baseline_name=base, n=len(paced.lat), target_max=150,
            note="between messages too: a tab's next message would have waited that long"),
        row(f"{where}: p99", percentile(paced.lat, 99) * 1000,
            percentile(stock.lat, 99) * 1000, unit="ms", baseline_name=base,
            n=len(paced.lat), target_max=150),
        row(f"{where}: p50", percentile(paced.lat, 50) * 1000,
            percentile(stock.lat, 50) * 1000, unit="ms", baseline_name=base, n=len(paced.lat)),
        row(f"{where}: longest full collection during the messages", _ms(paced.full),
            _ms(stock.full), unit="ms", baseline_name=base, n=len(paced.lat),
            note=f"full collections: {len(paced.full)} paced, {len(stock.full)} stock"),
        row(f"{where}: the pacer's full collection once idle", _ms(res["idle"]), _ms(stock.full),
            unit="ms", baseline_name="the stock collector's longest", n=len(res["idle"]),
            note=f"its first look at the tabs (once, before its phase): {res['first'] * 1000:.0f} ms"),
    ]
    return {"allday": {"rows": rows, "notes": [(
        "figure 5's harness (real Flet sessions, stand-in connection); phases one after the "
        "other on the same tabs, stock first (a stock full collection comes once per few "
        "hundred messages, so the two cannot be interleaved message by message).")]}}
