"""Host mode's file downloads yield the link to chat, as files connections do (``files/yielding``).

A phone that downloads a video from the host over Wi-Fi gets it through the same access point's
queue as its tab's chat (the tab's WebSocket to the same host): unpaced, every chat update waits
behind the download. The blob route's response (``PacedFileResponse``) paces its socket while it
streams. ASGI gives an app no socket, so host mode's uvicorn runs ``http_protocol()``: its own
HTTP protocol class that notes each connection's socket under the client address uvicorn puts
in the request's scope, and forgets it when the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.responses import FileResponse

from .files.yielding import TICK_S, SocketPacer, paceable

log = logging.getLogger("fletchat.web")

DRAIN_WAIT_S = 1.0  # after the response is written, pacing goes on while the socket still holds it

_sockets: dict[tuple[str, int], Any] = {}  # client (host, port) -> its connection's socket


def _key(addr: Any) -> tuple[str, int] | None:
    try:
        return (str(addr[0]), int(addr[1]))
    except (TypeError, ValueError, IndexError):
        return None


def socket_for(client: Any) -> Any:
    """The socket of the HTTP connection a request with this ``scope["client"]`` came on."""
    key = _key(client)
    return _sockets.get(key) if key is not None else None


def http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's own HTTP protocol (httptools or h11, as it would choose), noting sockets."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class SocketNotingProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._fletchat_key = _key(transport.get_extra_info("peername"))
            sock = transport.get_extra_info("socket")
            if self._fletchat_key is not None and sock is not None:
                _sockets[self._fletchat_key] = sock

        def connection_lost(self, exc: Exception | None) -> None:
            key = getattr(self, "_fletchat_key", None)
            if key is not None:
                _sockets.pop(key, None)
            super().connection_lost(exc)

    return SocketNotingProtocol


class PacedFileResponse(FileResponse):
    """A ``FileResponse`` whose socket is paced while it streams (where the platform allows)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sock = socket_for(scope.get("client"))
        if sock is None or not paceable():
            await super().__call__(scope, receive, send)
            return
        done = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_pace(SocketPacer(sock), done))
        try:
            await super().__call__(scope, receive, send)
        finally:
            done.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _pace(pacer: SocketPacer, done: asyncio.Event) -> None:
    """Step until the response is written and the socket has sent it (or a second more), then
    lift the cap: the connection goes on to carry other requests."""
    finished: float | None = None
    try:
        while True:
            now = time.monotonic()
            reading = pacer.step(now)
            if reading is None:
                return
            if done.is_set():
                finished = finished if finished is not None else now
                if not reading.notsent or now - finished > DRAIN_WAIT_S:
                    return
            await asyncio.sleep(TICK_S)
    except Exception:  # pacing is an optimisation: never the download's end
        log.exception("pacing a download stopped")
    finally:
        pacer.release()
