"""Hole 13 with many tabs: host mode obeys SIGTERM with 100 real Flet sessions open while a burst
of messages is still being shown to them, says goodbye to its LAN peer and keeps the burst stored.

On main the updates already queued for the tabs (30 messages x 100 tabs) were all rendered
before uvicorn got to its shutdown, and the interpreter then tore down every session's controls:
15-19 s at load 12 (bench figure 15 has the figures). Real processes, real sockets, loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import urllib.parse
from pathlib import Path

import msgpack

from bench.sessions import _source, open_flet_session
from tests.browser import host_mode_server
from tests.test_headless_shutdown import Headless
from tests.timing import eventually

TABS = 100
BURST = 30
INVOKE = b"\x00\x92\x05"  # flet's INVOKE_METHOD frame: the page asks the client (stored prefs...)


async def _answer(ws) -> None:
    """A tab that reads what the host sends and answers its calls with "nothing"."""
    with contextlib.suppress(Exception):
        async for frame in ws:
            if isinstance(frame, bytes) and frame[:3] == INVOKE:
                call = msgpack.unpackb(frame[1:])[1]
                await ws.send(b"\x00" + msgpack.packb([5, {
                    "control_id": call["control_id"], "call_id": call["call_id"],
                    "result": None, "error": None}]))


def _stored(db: Path, marker: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM messages WHERE text LIKE ?",
                               (f"{marker}%",)).fetchone()[0]
    except sqlite3.Error:
        return 0


async def test_sigterm_with_100_tabs_and_a_burst_exits_with_goodbye_and_history(tmp_path):
    bob = Headless(tmp_path, "bob")
    tabs: list = []
    try:
        bob_port = bob.wait_for(lambda e: e["event"] == "ready")["peer_port"]
        data = tmp_path / "host"
        with host_mode_server(data, "--name", "hosty", "--peer-port", "0", "--interface",
                              "127.0.0.1", "--peer", f"127.0.0.1:{bob_port}") as (url, proc):
            port = urllib.parse.urlsplit(url).port
            for start in range(0, TABS, 20):
                tabs += await asyncio.gather(*(open_flet_session(port, _source(i), 120)
                                               for i in range(start, min(TABS, start + 20))))
            readers = [asyncio.ensure_future(_answer(ws)) for ws in tabs]
            await asyncio.to_thread(bob.wait_for, lambda e: e["event"] == "online"
                                    and any(p["name"] == "hosty" for p in e["peers"]), 60)
            assert bob.proc.stdin is not None
            bob.proc.stdin.write("".join(f"burst {i}\n" for i in range(BURST)))
            bob.proc.stdin.flush()
            db = data / "history.db"
            await eventually(lambda: _stored(db, "burst ") == BURST, "the burst stored", 60)

            os.killpg(proc.pid, signal.SIGTERM)  # the tabs are still being shown the burst
            await eventually(lambda: proc.poll() is not None, "host mode exited on SIGTERM", 10)
            assert proc.returncode == 0
            await asyncio.to_thread(bob.wait_for, lambda e: e["event"] == "online"
                                    and all(p["name"] != "hosty" for p in e["peers"]), 10)
            assert _stored(db, "burst ") == BURST
            for reader in readers:
                reader.cancel()
    finally:
        for ws in tabs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)
        bob.close()
