"""Host mode's file downloads yield the link to chat, as files connections do (``files/yielding``).

A phone that downloads a video from the host over Wi-Fi gets it through the same access point's
queue as its tab's chat (the tab's WebSocket to the same host): unpaced, every chat update waits
behind the download. The blob route's response (``PacedFileResponse``) paces its socket while it
streams. ASGI gives an app no socket, so host mode's uvicorn runs ``http_protocol()``: its own
HTTP protocol class that hands each request of a connection that connection's ``Connection``
(in ``scope["extensions"]``): its socket, and the one pacer all its responses share. Nothing is
kept by address (a forwarded-for header can name any address) and nothing outlives the
connection (a WebSocket upgrade hands the transport to another protocol).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.responses import FileResponse

from .files.yielding import TICK_S, SocketPacer, paceable

log = logging.getLogger("fletchat.web")

EXTENSION = "fletchat.connection"
DRAIN_WAIT_S = 1.0  # after the last response is written, pacing goes on while the socket holds it


class Connection:
    """One HTTP connection's socket and its pacer: responses on a keep-alive connection follow
    one another (the next may start while the last one's bytes still drain), so they share one
    pacer rather than each setting the socket's cap."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.streaming = 0  # responses being written
        self.task: asyncio.Task[None] | None = None

    async def stream(self, write: Any) -> None:
        """Run ``write()`` (a response going out) with the socket paced."""
        self.streaming += 1
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._pace(SocketPacer(self.sock)))
        try:
            await write()
        finally:
            self.streaming -= 1

    async def _pace(self, pacer: SocketPacer) -> None:
        """Step while responses are written, and until the socket has sent them (or a second
        more); then lift the cap: the connection goes on to carry other requests."""
        finished: float | None = None
        try:
            while True:
                now = time.monotonic()
                reading = pacer.step(now)
                if reading is None:  # closed, or a platform without pacing
                    return
                if self.streaming:
                    finished = None
                else:
                    finished = finished if finished is not None else now
                    if not reading.notsent or now - finished > DRAIN_WAIT_S:
                        return
                await asyncio.sleep(TICK_S)
        except Exception:  # pacing is an optimisation: never the download's end
            log.exception("pacing a download stopped")
        finally:
            pacer.release()


def http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's own HTTP protocol (httptools or h11, as it would choose), each of whose requests
    carries its connection's ``Connection``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class ConnectionNotingProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is None:
                return
            connection, app = Connection(sock), self.app

            async def with_connection(scope: Any, receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})[EXTENSION] = connection
                await app(scope, receive, send)

            self.app = with_connection  # HTTP requests only: an upgrade calls the app it loaded

    return ConnectionNotingProtocol


class PacedFileResponse(FileResponse):
    """A ``FileResponse`` whose socket is paced while it streams (where the platform allows)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        connection = (scope.get("extensions") or {}).get(EXTENSION)
        if not isinstance(connection, Connection) or not paceable():
            await super().__call__(scope, receive, send)
            return
        await connection.stream(lambda: super(PacedFileResponse, self).__call__(scope, receive, send))
