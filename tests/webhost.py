"""Host mode's web app served in the test's own process (uvicorn on a loopback port)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import flet_web.fastapi as flet_fastapi
import uvicorn

from tests.timing import scaled


@contextlib.asynccontextmanager
async def serving(app, backlog: int = 64) -> AsyncIterator[int]:
    """Serve ``app`` until the block ends; yields the port.

    flet-web's app manager is one per process: its lifespan ``start`` runs its eviction task
    only once (a server stopped before cancels it and ``start`` does not begin it again), so
    without the reset below a second server in this process never releases closed tabs."""
    manager = flet_fastapi.app_manager
    manager._FletAppManager__evict_sessions_task = None
    manager._FletAppManager__evict_oauth_states_task = None
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, scaled(30))
        sock.close()
