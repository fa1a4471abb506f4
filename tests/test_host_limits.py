"""Host mode's WebSocket size limit holds at the server, for the relay and Flet's own /ws."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fletchat.host import MAX_WS_MESSAGE_BYTES
from tests.browser import host_mode_server

MiB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def big_frame(url: str, size: int) -> int | None:
    """Send one message of ``size`` bytes; the close code the server gave (None if it took it)."""
    try:
        async with connect(url, max_size=None, open_timeout=60, close_timeout=5) as ws:
            await ws.send(b"x" * size)
            await asyncio.wait_for(ws.recv(), 60)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except (OSError, TimeoutError):
        return None
    return None


async def test_big_websocket_frames_do_not_grow_the_host(tmp_path):
    assert MAX_WS_MESSAGE_BYTES <= MiB
    with host_mode_server(tmp_path / "host", "--no-lan") as (url, proc):
        port = urllib.parse.urlsplit(url).port
        async with connect(f"ws://127.0.0.1:{port}/relay") as ws:  # warm up the relay route
            await ws.send("{}")
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
        before = peak_rss(proc.pid)
        targets = [f"ws://127.0.0.1:{port}/{path}" for path in ("relay", "ws") for _ in range(6)]
        codes = await asyncio.gather(*(big_frame(t, 15 * MiB) for t in targets))
        grown = peak_rss(proc.pid) - before
        assert proc.poll() is None
    assert grown < 40 * MiB, f"peak RSS grew {grown / MiB:.0f} MiB; close codes {codes}"
    assert 1009 in codes, codes  # "message too big", said by the server


async def test_sigterm_ends_host_mode_even_with_tabs_open(tmp_path):
    """Hole 13: open tabs (WebSockets nobody closes) must not keep host mode alive after SIGTERM.
    uvicorn's graceful shutdown waited for them forever; now they get a short grace."""
    import os
    import signal

    from tests.timing import eventually

    with host_mode_server(tmp_path / "host", "--no-lan") as (url, proc):
        port = urllib.parse.urlsplit(url).port
        tabs = [await connect(f"ws://127.0.0.1:{port}/ws") for _ in range(5)]
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            await eventually(lambda: proc.poll() is not None, "host mode exited on SIGTERM", 10)
            assert proc.returncode == 0
        finally:
            for tab in tabs:
                with contextlib.suppress(Exception):
                    await tab.close()
