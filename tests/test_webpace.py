"""Host mode's downloads yield the link to chat (``fletchat/webpace.py``): uvicorn's HTTP protocol
notes each connection's socket for the request's client address, and the blob route paces it
while it streams, on a real uvicorn and, over a shaped link between namespaced hosts, a real
download."""

from __future__ import annotations

import asyncio
import socket
import sys

import httpx
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from fletchat import webpace
from fletchat.host import uvicorn_config
from tests.conftest import need
from tests.lan import lan_available, tc_available, virtual_lan
from tests.test_files_yielding import _pacing_caps
from tests.timing import eventually


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_each_request_carries_its_own_connections_socket_whatever_it_claims():
    """The socket comes with the request (not looked up by address): a forwarded-for header
    naming another address, even with a port, does not hand it someone else's socket; and a
    WebSocket on the same server still upgrades."""
    async def whose(request: Request) -> JSONResponse:
        connection = request.scope.get("extensions", {}).get(webpace.EXTENSION)
        return JSONResponse({"local": list(connection.sock.getpeername()),
                             "client": list(request.client or ())})

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())
        await ws.close()

    config = uvicorn_config(Starlette(routes=[Route("/whose", whose), WebSocketRoute("/ws", echo)]))
    config.host, config.port, config.lifespan = "127.0.0.1", _free_port(), "off"
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        await eventually(lambda: server.started, "uvicorn started", 10)
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{config.port}/whose"
            plain = (await client.get(url)).json()
            forged = (await client.get(url, headers={"X-Forwarded-For": "10.9.8.7:4242"})).json()
        assert forged["client"] == ["10.9.8.7", 4242]  # uvicorn believes the loopback proxy ...
        assert forged["local"] == plain["local"]  # ... but the socket is this connection's own
        async with websockets.connect(f"ws://127.0.0.1:{config.port}/ws") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
    finally:
        server.should_exit = True
        await task


async def test_responses_on_one_connection_share_one_pacer_that_ends():
    """Keep-alive responses follow one another: the next one joins the pacer still draining
    the last, and the pacer ends once nothing streams."""
    connection = webpace.Connection(socket.socket())  # never connected: the pacer ends at once
    started: list[asyncio.Task] = []

    async def write() -> None:
        started.append(connection.task)
        await asyncio.sleep(0.05)

    await asyncio.gather(connection.stream(write), connection.stream(write))
    assert started[0] is started[1] and connection.streaming == 0
    await eventually(lambda: connection.task.done(), "the pacer ended", 5)
    connection.sock.close()


SERVE_BLOB = r"""
import os, sys, asyncio, uvicorn
from pathlib import Path
from starlette.applications import Starlette
from fletchat.files.blobstore import BlobStore
from fletchat.host import uvicorn_config
from fletchat.webfiles import BlobRoute
from fletchat.webpace import EXTENSION
from starlette.responses import PlainTextResponse
from starlette.routing import Route
root, ip, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

async def cap(request):  # the connection's cap, once a pacer would have let go
    await asyncio.sleep(1.5)
    import socket, struct
    sock = request.scope["extensions"][EXTENSION].sock
    return PlainTextResponse(str(struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, 47, 4))[0]))

store = BlobStore(root / "files")
src = root / "video.bin"
src.write_bytes(os.urandom(30_000_000))
sha = store.import_file(src, "video.bin", "application/octet-stream").sha256
config = uvicorn_config(Starlette(routes=[BlobRoute(store.path, store.root).route(),
                                          Route("/cap", cap)]))
config.host, config.port, config.lifespan = ip, port, "off"
print(sha, flush=True)
asyncio.run(uvicorn.Server(config).serve())
"""


def test_a_download_on_a_shaped_link_is_paced_below_the_link(tmp_path):
    """100 Mbit/s each way: the host's socket for a browser's download gets a cap under the link's
    rate while it streams (the queue it would keep is what the tab's chat waits behind); the
    bytes arrive whole; the keep-alive connection carries the next request with no cap."""
    need(*lan_available())
    need(*tc_available())
    with virtual_lan(2) as lan:
        h1, h2 = lan
        lan.shape_all(100)
        server = h1.popen([sys.executable, "-c", SERVE_BLOB, str(tmp_path), h1.ip, "8096"])
        try:
            sha = server.stdout.readline().strip()
            assert len(sha) == 64, sha
            # the download, then (on the same keep-alive connection) what cap it left
            fetch = h2.popen(["curl", "-sS", "--retry", "20", "--retry-connrefused",
                              "--retry-delay", "1", "-o", str(tmp_path / "got.bin"),
                              f"http://{h1.ip}:8096/files/blob/{sha}?dl=1",
                              "-o", str(tmp_path / "cap.txt"), f"http://{h1.ip}:8096/cap"])
            caps: list[float] = []
            while fetch.poll() is None:
                caps += _pacing_caps(h1)
            assert fetch.returncode == 0
            assert (tmp_path / "got.bin").stat().st_size == 30_000_000
            assert caps, "the download was never paced"
            assert min(caps) < 100e6, caps[:10]
            assert (tmp_path / "cap.txt").read_text() == str(0xFFFFFFFF)  # lifted afterwards
        finally:
            server.terminate()
            server.wait(10)
