"""What opening N joined tabs costs one host (issue 12): figure 5's harness (``bench/fanout.py``:
real server-side Flet sessions on a stand-in connection, the app's ``ChatView`` over one
``Hub``), one tab at a time, each joined under its own name.

Per tab opened: the host's process CPU to build it (the page mounted, R rows loaded, the loop
settled), then the CPU of its join until the loop has settled (the join handled in every open
tab, every answer sent), and the bytes the join sent to the tabs already open. A join should
cost each open tab a small constant: CPU per join divided by the tabs open should stay flat as N
grows, and so should bytes per open tab.

``uv run python -m bench.joins [--n 10,40,100] [--rows 0] [--gap 0] [--profile FILE]`` prints,
per N, the total CPU, the CPU of the last tenth of the joins per open tab, and the bytes per open
tab per join; ``--profile`` writes cProfile stats of the largest N's opening (``python -m
pstats``). ``--gap 1.5`` waits that long after each join (its CPU counted with the join), as
people joining a classroom's host one after another do: what each open tab does a second after
a join (its read mark, ``READ_DELAY``) is then part of every join, as it is in use.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fanout import _close, _host_hub, _make_conn_class, _speedup

SETTLE = 0.02  # seconds of quiet loop after each open: every tab's answer to the join is out


@dataclass
class Opening:
    n: int
    cpu: list[float] = field(default_factory=list)  # per join, the whole host
    build: list[float] = field(default_factory=list)  # per tab, building it before its join
    bytes_to_open: list[int] = field(default_factory=list)  # per join, to the tabs open before
    total_cpu: float = 0.0
    wall: float = 0.0

    def tail(self) -> slice:
        return slice(max(1, self.n - max(1, self.n // 10)), self.n)

    def summary(self) -> dict[str, Any]:
        t = self.tail()
        per_open = [c / k for k, c in enumerate(self.cpu) if k][t.start - 1 : t.stop - 1]
        bytes_per = [b / k for k, b in enumerate(self.bytes_to_open) if k][t.start - 1 :]
        return {
            "n": self.n,
            "total_cpu_s": round(self.total_cpu, 3),
            "wall_s": round(self.wall, 3),
            "last_joins_cpu_ms": round(1000 * sum(self.cpu[t]) / len(self.cpu[t]), 3),
            "last_joins_cpu_per_open_tab_ms": round(1000 * sum(per_open) / len(per_open), 4),
            "last_joins_bytes_per_open_tab": round(sum(bytes_per) / len(bytes_per), 1),
            "build_cpu_ms_median": round(1000 * sorted(self.build)[len(self.build) // 2], 3),
            "total_bytes_to_open_tabs": sum(self.bytes_to_open),
        }


async def _settle(hub: Any) -> None:
    """Let every scheduled task and the store's writer run out."""
    await asyncio.sleep(SETTLE)
    for _ in range(3):
        await asyncio.sleep(0)


async def open_tabs(n: int, rows: int, tmp: Path, key: str,
                    profiler: cProfile.Profile | None = None,
                    profile_from: int = 0, gap: float = 0.0) -> tuple[Opening, list, Any]:
    from flet.controls.context import _context_page
    from flet.messaging.protocol import Message, MessageAction, RegisterClientResponseBody
    from flet.messaging.session import Session
    from flet.pubsub.pubsub_hub import PubSubHub

    from fletchat.hub import HubSession
    from fletchat.ui import ChatView
    from fletchat.ui.hub_backend import HubBackend
    from fletchat.ui.screens import ScreensPublisher

    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(4)
    conn_cls = _make_conn_class()
    _speedup(True)
    hub = await _host_hub(tmp, key, rows)
    pubsub = PubSubHub(loop=loop, executor=executor)
    out = Opening(n)
    conns: list[Any] = []
    sessions: list[Any] = []
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        if profiler is not None and i == profile_from:
            profiler.enable()
        t0 = time.process_time()
        conn = conn_cls(loop, executor, pubsub, {})
        session = Session(conn)
        session.apply_page_patch({"width": 1280, "height": 800, "web": True})
        conn.send_message(Message(MessageAction.REGISTER_CLIENT, RegisterClientResponseBody(
            session_id=session.id, page_patch=session.get_page_patch(), error="")))
        _context_page.set(session.page)
        hub.use_pubsub(ScreensPublisher(session.page.pubsub, loop))  # as make_session_main
        me = HubSession(hub, device="browser")
        view = ChatView(session.page, HubBackend(me, session.page.pubsub))
        await view.mount()
        while len(view.conversation.rows) < rows and await view.feed.older_page():
            pass
        view.updates.flush()
        await _settle(hub)
        out.build.append(time.process_time() - t0)
        before = [c.bytes_out for c in conns]
        t0 = time.process_time()
        me.join(f"Tab{i:03d}")
        await _settle(hub)
        if gap:
            await asyncio.sleep(gap)
        out.cpu.append(time.process_time() - t0)
        out.bytes_to_open.append(sum(c.bytes_out for c in conns) - sum(before))
        conns.append(conn)
        sessions.append(session)
    if profiler is not None:
        profiler.disable()
    out.total_cpu = time.process_time() - c0
    out.wall = time.perf_counter() - w0
    executor.shutdown(wait=False)
    return out, sessions, hub


async def _run(ns: list[int], rows: int, tmp: Path, profile: Path | None,
               gap: float) -> list[dict]:
    results = []
    for n in ns:
        profiler = cProfile.Profile() if profile is not None and n == max(ns) else None
        opening, sessions, hub = await open_tabs(n, rows, tmp, f"j{n}", profiler, gap=gap)
        results.append(opening.summary())
        print(json.dumps(results[-1]), flush=True)
        if profiler is not None:
            profiler.dump_stats(str(profile))

        class _T:  # what _close needs
            pass

        t = _T()
        t.sessions, t.hub = sessions, hub  # type: ignore[attr-defined]
        await _close([t])  # type: ignore[list-item]
        gc.collect()
    return results


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.joins")
    p.add_argument("--n", default="10,40")
    p.add_argument("--rows", type=int, default=0)
    p.add_argument("--profile", type=Path)
    p.add_argument("--gap", type=float, default=0.0)
    args = p.parse_args()
    ns = [int(x) for x in args.n.split(",") if x]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        asyncio.run(_run(ns, args.rows, Path(tmp), args.profile, args.gap))
    print(f"load {load:.2f} -> {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
