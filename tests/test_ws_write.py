"""``ws_write``: frames written at once arrive whole and in order, beside frames sent the usual
way, and nothing is written at once when websockets would have waited (real sockets)."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from fletchat.ws_write import writable, write_now
from tests.timing import eventually


async def _pair():
    got: list[str] = []

    async def handler(ws) -> None:
        async for raw in ws:
            got.append(raw)

    server = await serve(handler, "127.0.0.1", 0, compression=None)
    port = server.sockets[0].getsockname()[1]
    client = await connect(f"ws://127.0.0.1:{port}", compression=None)
    return server, client, got


async def test_frames_written_at_once_arrive_in_order_beside_sent_ones():
    server, ws, got = await _pair()
    try:
        assert writable(ws)
        await ws.send("first")
        write_now(ws, ["second", "third é"])
        await ws.send("fourth")
        write_now(ws, ["x" * 100_000])  # larger than one TLS record or TCP segment
        await eventually(lambda: len(got) == 5, "the five frames")
        assert got == ["first", "second", "third é", "fourth", "x" * 100_000]
    finally:
        await ws.close()
        server.close()
        await server.wait_closed()


async def test_nothing_is_written_at_once_while_paused_mid_fragment_or_closed():
    server, ws, got = await _pair()  # (then LinkCore.send leaves the frames to its write task)
    try:
        ws.pause_writing()  # what the transport does when its buffer is over the high mark
        assert not writable(ws)
        ws.resume_writing()
        assert writable(ws)
        ws.send_in_progress = asyncio.get_running_loop().create_future()  # a fragmented send
        assert not writable(ws)
        ws.send_in_progress.set_result(None)
        ws.send_in_progress = None
        await ws.close()
        assert not writable(ws)
        assert got == []
    finally:
        server.close()
        await server.wait_closed()
