"""Figure 10: host mode's memory with N Flet sessions open, and after they close.

A real host process (``main.py --web --no-lan``); each session is a headless Flet client on ``/ws``
(it registers as a browser would and waits for its first page patch, so the chat view is built),
spread over loopback source addresses (the host holds at most 16 sessions per address). RSS is
read from /proc once the sessions are open; they are closed and, after the host's grace for closed
tabs (``FLET_SESSION_TIMEOUT``, set short here), released before the next count. The largest count
is opened a second time: released sessions leave memory Python reuses, kept ones would add to it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .common import MAIN, ROOT, row, rss_kib, stop_process

GRACE_S = 3  # FLET_SESSION_TIMEOUT for the measured host (full run)
EVICT_EVERY_S = 10  # flet-web's eviction task period


async def open_flet_session(port: int, source: str = "127.0.0.1", timeout: float = 60.0):
    """A headless Flet client on ``/ws``: registered, first patch received; returns the socket."""
    import msgpack
    from websockets.asyncio.client import connect

    ws = await connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=timeout,
                       family=2, local_addr=(source, 0), ping_interval=None)  # the host pings
    page = {"route": "/", "width": 1000.0, "height": 800.0}
    await ws.send(b"\x00" + msgpack.packb([1, {"session_id": None, "page_name": "",
                                               "page": page}]))
    for _ in range(2):  # the register response, then the page's first patch
        await asyncio.wait_for(ws.recv(), timeout)
    return ws


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"host exited with {proc.returncode}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("host did not answer")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
                resp.read()
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)


def _source(i: int) -> str:
    return f"127.0.{2 + i // 10}.{1 + i % 10}"  # 10 sessions per address


async def _open(port: int, n: int) -> list:
    sockets: list = []
    for start in range(0, n, 25):
        batch = range(start, min(n, start + 25))
        sockets += await asyncio.gather(*(open_flet_session(port, _source(i)) for i in batch))
    await asyncio.sleep(1)
    return sockets


async def _close(sockets: list, grace: int, release: bool = True) -> None:
    """Close the sessions; with ``release``, wait until flet-web's eviction has dropped them."""
    await asyncio.gather(*(ws.close() for ws in sockets))
    if sockets and release:
        await asyncio.sleep(grace + EVICT_EVERY_S + 2)


async def _measure(port: int, pid: int, counts: list[int], grace: int
                   ) -> tuple[list[tuple[int, float]], float]:
    """RSS (MiB) with each count of sessions open (each set closed and released before the next),
    then with the largest count open once more: if closed sessions were kept, that would grow."""
    out = []
    for n in counts:
        sockets = await _open(port, n)
        out.append((n, (rss_kib(pid) or 0) / 1024))
        await _close(sockets, grace)
    sockets = await _open(port, counts[-1])
    again = (rss_kib(pid) or 0) / 1024
    await _close(sockets, grace, release=False)  # nothing is measured after this one
    return out, again


def quick_plan(quick: bool) -> dict[str, Any]:
    """Session counts and the grace for closed tabs (quick: one small count, the shortest grace:
    the release still takes flet-web's 10 s eviction period, which is why this figure has its own
    lane in quick mode)."""
    return {"counts": [0, 10] if quick else [0, 10, 100, 500], "grace": 1 if quick else GRACE_S}


def run(quick: bool) -> dict[str, dict[str, Any]]:
    plan = quick_plan(quick)
    counts, grace = plan["counts"], plan["grace"]
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="fcbench-") as tmp:
        env = {**os.environ, "FLET_SESSION_TIMEOUT": str(grace)}
        proc = subprocess.Popen(
            [sys.executable, MAIN, "--web", "--no-lan", "--port", str(port),
             "--data-dir", str(Path(tmp) / "d")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_http(port, proc)
            results, again = asyncio.run(_measure(port, proc.pid, counts, grace))
        finally:
            stop_process(proc)
    base = results[0][1]
    rows = [row(f"RSS with {n} sessions open", mib, base, unit="MiB",
                baseline_name="same host, 0 sessions", n=1,
                note=f"{(mib - base) / n * 1024:.0f} KiB per session")
            for n, mib in results[1:]]
    top, top_mib = results[-1]
    rows.append(row(f"RSS with {top} sessions open again, after the first {top} closed",
                    again, top_mib, unit="MiB", baseline_name=f"first {top}", n=1,
                    target_max_ratio=1.2,
                    note="closed sessions are released: their memory is reused, not added"))
    return {"sessions": {"rows": rows, "notes": [
        ("headless Flet clients on /ws from loopback source addresses, 10 per address; "
        f"FLET_SESSION_TIMEOUT={grace}; RSS from /proc. Python keeps freed memory for reuse "
        "rather than returning it to the OS, so release shows as reuse in the last row.")]}}
