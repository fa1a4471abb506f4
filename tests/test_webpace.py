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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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


async def test_each_connections_socket_is_known_by_its_client_address_until_it_closes():
    async def whose(request: Request) -> JSONResponse:
        sock = webpace.socket_for(request.client)
        return JSONResponse({"found": sock is not None,
                             "peer": list(sock.getpeername()) if sock is not None else None})

    config = uvicorn_config(Starlette(routes=[Route("/whose", whose)]))
    config.host, config.port, config.lifespan = "127.0.0.1", _free_port(), "off"
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        await eventually(lambda: server.started, "uvicorn started", 10)
        async with httpx.AsyncClient() as client:
            answer = (await client.get(f"http://127.0.0.1:{config.port}/whose")).json()
            again = (await client.get(f"http://127.0.0.1:{config.port}/whose")).json()
        assert answer["found"] and answer["peer"] == again["peer"]  # one keep-alive connection
        key = (answer["peer"][0], answer["peer"][1])
        await eventually(lambda: webpace.socket_for(key) is None, "forgotten once closed", 10)
    finally:
        server.should_exit = True
        await task


SERVE_BLOB = r"""
import os, sys, asyncio, uvicorn
from pathlib import Path
from starlette.applications import Starlette
from fletchat.files.blobstore import BlobStore
from fletchat.host import uvicorn_config
from fletchat.webfiles import BlobRoute
root, ip, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = BlobStore(root / "files")
src = root / "video.bin"
src.write_bytes(os.urandom(30_000_000))
sha = store.import_file(src, "video.bin", "application/octet-stream").sha256
config = uvicorn_config(Starlette(routes=[BlobRoute(store.path, store.root).route()]))
config.host, config.port, config.lifespan = ip, port, "off"
print(sha, flush=True)
asyncio.run(uvicorn.Server(config).serve())
"""


def test_a_download_on_a_shaped_link_is_paced_below_the_link(tmp_path):
    """100 Mbit/s each way: the host's socket for a browser's download gets a cap under the link's
    rate while it streams (the queue it would keep is what the tab's chat waits behind); the
    bytes arrive whole; the cap is lifted once the response has gone."""
    need(*lan_available())
    need(*tc_available())
    with virtual_lan(2) as lan:
        h1, h2 = lan
        lan.shape_all(100)
        server = h1.popen([sys.executable, "-c", SERVE_BLOB, str(tmp_path), h1.ip, "8096"])
        try:
            sha = server.stdout.readline().strip()
            assert len(sha) == 64, sha
            fetch = h2.popen(["curl", "-sS", "--retry", "20", "--retry-connrefused",
                              "--retry-delay", "1", "-o", str(tmp_path / "got.bin"),
                              f"http://{h1.ip}:8096/files/blob/{sha}?dl=1"])
            caps: list[float] = []
            while fetch.poll() is None:
                caps += _pacing_caps(h1)
            assert fetch.returncode == 0
            assert (tmp_path / "got.bin").stat().st_size == 30_000_000
            assert caps, "the download was never paced"
            assert min(caps) < 100e6, caps[:10]
            assert not _pacing_caps(h1)  # lifted: the connection is closed, or uncapped
        finally:
            server.terminate()
            server.wait(10)
