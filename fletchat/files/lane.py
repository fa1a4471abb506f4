"""The files connection (docs/protocol.md, "Files"): a second WebSocket per peer, beside the chat
connection, that carries only file frames, so a chunk never delays a chat frame.

It uses the mesh's TLS and the chat connection's ``hello``/``auth`` handshake (the same
``PeerConnection`` proves the key), at the path ``/files``. A files connection only exists beside
an open chat connection to the same peer id, one per peer, dialed by one side only (``dials``),
and closes when the chat connection does. Frames go to ``FilesService.on_frame``; what the
service sends is queued per connection and written by one task, so reading never waits on
writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from ..aio import wait_event, within
from ..peer.connection import Closed, Local, Opened, PeerConnection, State
from ..protocol import CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TIMEOUT, NONCE_BYTES
from . import frames as F
from . import limits as L
from .service import FilesService
from .yielding import TICK_S, SocketPacer, paceable

log = logging.getLogger("fletchat.files")

FILES_PATH = "/files"
MAX_FILES_HANDSHAKES = 16  # files connections still in their handshake, from anyone
# Answers queued for one connection: what an honest peer's windows can have asked of us at once
# (4 files x 16 chunks x 1 MiB), and one chunk more; beyond that it is not reading.
MAX_QUEUED_BYTES = L.MAX_CONCURRENT_FETCHES * L.MAX_IN_FLIGHT_PER_HOLDER * L.MAX_CHUNK_SIZE + L.MIB
RETRY_S = 2.0  # a failed dial is tried again after this long (while the chat connection is up)
WRITE_SLICE = 64 * L.KIB  # a chunk frame is written in fragments of this size, yielding between


async def _slices(frame: bytes):
    """A large frame as WebSocket fragments, with a turn of the event loop after each: TLS
    encrypts each slice as it is written, so a 1 MiB chunk never holds the loop (and the chat
    connection's frames) for the whole encryption at once."""
    view = memoryview(frame)
    for start in range(0, len(view), WRITE_SLICE):
        yield view[start:start + WRITE_SLICE]
        await asyncio.sleep(0)


def dials(me: str, my_port: int, peer: str, peer_port: int) -> bool:
    """Whether this side opens the files connection: the smaller peer id dials, unless the other
    side accepts no connections (port 0); both ends compute the same answer."""
    if me < peer:
        return bool(peer_port)
    return not my_port and bool(peer_port)


class _Out:
    """One files connection's writer: frames queued by the service, written in order."""

    def __init__(self, ws: Any, peer: str, lane: FilesLane) -> None:
        self.ws, self.peer, self.lane = ws, peer, lane
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.queued = 0
        self.closed = False
        self.close_args: tuple[int, str] | None = None  # (code, reason) once closed here
        self.busy = asyncio.Event()  # something queued: the pacing task looks at the link
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._write())
        self.pacing = loop.create_task(self._pace())
        self.task.add_done_callback(lambda _t: self.pacing.cancel())

    async def send(self, frame: str | bytes) -> None:
        if self.closed:
            return
        self.queued += len(frame)
        if self.queued > MAX_QUEUED_BYTES:  # more than it ever asked for: it is not reading
            await self.close(CLOSE_POLICY, "files lane: peer is not reading")
            return
        self.queue.put_nowait(frame)
        self.busy.set()

    async def _pace(self) -> None:
        """While answers go out (queued here or still in the socket), keep them from queueing on
        the link in front of chat frames (``yielding``); where the socket tells nothing (not
        Linux or Android), nothing is paced."""
        transport = getattr(self.ws, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None or not paceable():
            return
        pacer, waiting = SocketPacer(sock), 0
        try:
            while not self.closed:
                if self.queued <= 0 and not waiting:
                    self.busy.clear()
                    await self.busy.wait()
                    continue
                reading = pacer.step(time.monotonic())
                if reading is None:
                    return
                waiting = reading.notsent
                await asyncio.sleep(TICK_S)
        except Exception:  # pacing is an optimisation: never the connection's end
            log.exception("files connection to %s: pacing stopped", self.peer[:12])

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.put_nowait(None)
        self.close_args = (code, reason)
        if code not in (CLOSE_NORMAL, 1001):
            log.warning("files connection to %s closed: %s (%d)", self.peer[:12], reason, code)

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (frame := await self.queue.get()) is not None:
                big = isinstance(frame, bytes) and len(frame) > WRITE_SLICE
                await self.ws.send(_slices(frame) if big else frame)
                self.queued -= len(frame)
            code, reason = self.close_args or (CLOSE_NORMAL, "")
            await self.ws.close(code, reason[:120])


class FilesLane:
    """Opens, accepts and serves files connections for one mesh (``Mesh.routes[FILES_PATH]``)."""

    def __init__(self, mesh: Any, service: FilesService) -> None:
        self.mesh = mesh
        self.core = mesh._core
        self.service = service
        service.me = self.core.me.id  # ranks this peer among fellow fetchers of a file
        self.links: dict[str, _Out] = {}
        self._dialing: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, float] = {}
        self._handshakes = 0
        self._dials = 0
        self._task: asyncio.Task[None] | None = None
        mesh.routes[FILES_PATH] = self.accept

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._reconcile_loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._dialing.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for peer, out in list(self.links.items()):
            await out.close(1001, "shutting down")
            await self.service.detach(peer)

    # ---- which connections should exist ----
    async def _reconcile_loop(self) -> None:
        while True:
            changed = self.core.changed
            with contextlib.suppress(Exception):
                await self._reconcile()
            await wait_event(changed, RETRY_S)

    async def _reconcile(self) -> None:
        up = {p.id: p for p in self.core.registry.peers()}
        for peer, out in list(self.links.items()):
            if peer not in up:  # the chat connection closed: so does this one
                await self._drop(peer, out, CLOSE_NORMAL, "chat connection closed")
        now = time.monotonic()
        for peer in up.values():
            if (peer.id in self.links or peer.id in self._dialing
                    or now - self._failed.get(peer.id, -RETRY_S) < RETRY_S
                    or not dials(self.core.me.id, self.core.port, peer.id, peer.port)):
                continue
            task = asyncio.get_running_loop().create_task(self._dial(peer))
            self._dialing[peer.id] = task
            task.add_done_callback(lambda _t, pid=peer.id: self._dialing.pop(pid, None))

    # ---- dialing and accepting ----
    async def _dial(self, peer: Any) -> None:
        self._dials += 1
        host = f"[{peer.host}]" if ":" in peer.host else peer.host
        ctx = self.core.trust.client_context()
        uri = f"{'wss' if ctx else 'ws'}://{host}:{peer.port}{FILES_PATH}"
        try:
            async with connect(uri, ssl=ctx, max_size=F.MAX_BINARY_FRAME_BYTES, compression=None,
                               ping_interval=None, open_timeout=self.core.settings.handshake_timeout,
                               close_timeout=2.0) as ws:
                await self._run(ws, outgoing=True, expect=peer.id)
        except (OSError, TimeoutError, WebSocketException) as err:
            log.debug("files connection to %s failed: %s", uri, err or type(err).__name__)
        finally:
            self._failed[peer.id] = time.monotonic()

    async def accept(self, ws: Any) -> None:
        if self._handshakes >= MAX_FILES_HANDSHAKES:
            await ws.close(1013, "files lane: too many handshakes, try again")
            return
        ws.protocol.max_message_size = F.MAX_BINARY_FRAME_BYTES  # this connection only
        await self._run(ws, outgoing=False, expect=None)

    async def _run(self, ws: Any, *, outgoing: bool, expect: str | None) -> None:
        self._handshakes += 1
        try:
            peer = await self._handshake(ws, outgoing)
        finally:
            self._handshakes -= 1
        if peer is None:
            return
        await self._chat_registered(peer)
        if peer not in self.core.registry or (expect is not None and peer != expect):
            await ws.close(CLOSE_POLICY, "files lane: no chat connection")
            return
        old = self.links.get(peer)
        if old is not None:
            await self._drop(peer, old, CLOSE_NORMAL, "replaced")
        out = self.links[peer] = _Out(ws, peer, self)
        await self.service.attach(peer, out)
        try:
            async for raw in ws:
                if out.closed:
                    break
                await self.service.on_frame(peer, raw)
        except ConnectionClosed:
            pass
        finally:
            if self.links.get(peer) is out:
                await self._drop(peer, out, CLOSE_NORMAL, "")
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(out.task, 2.0)

    async def _chat_registered(self, peer: str) -> None:
        """The two chat ends register a moment apart: give this one up to ``RETRY_S``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_S
        while peer not in self.core.registry and loop.time() < deadline:
            await wait_event(self.core.changed, deadline - loop.time())

    async def _drop(self, peer: str, out: _Out, code: int, reason: str) -> None:
        if self.links.get(peer) is out:
            del self.links[peer]
            await self.service.detach(peer)
        await out.close(code, reason)

    async def _handshake(self, ws: Any, outgoing: bool) -> str | None:
        """The chat connection's hello/auth (same keys, TLS binding and trust rules); the
        authenticated peer id, or None (the socket is closed)."""
        remote = ws.remote_address
        conn = PeerConnection(
            Local(self.core.me, self.core.port, self.core.session, self._dials if outgoing else 0),
            outgoing, str(remote[0]) if remote else "?", self.core.trust,
            secrets.token_hex(NONCE_BYTES), time.time(),
            self.mesh._sessions._tls_facts(ws, outgoing), self.core.settings.limits,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.core.settings.handshake_timeout
        try:
            for frame in conn.data_to_send():
                await ws.send(frame)
            while conn.state in (State.AWAIT_HELLO, State.AWAIT_AUTH):
                raw = await within(ws.recv(), deadline - loop.time())
                if isinstance(raw, bytes):
                    await ws.close(1003, "binary frame before the handshake")
                    return None
                events = conn.receive_text(raw, time.time())
                for frame in conn.data_to_send():
                    await ws.send(frame)
                for event in events:
                    if isinstance(event, Opened):
                        return event.peer.id
                    if isinstance(event, Closed):
                        await ws.close(event.code, event.reason[:120])
                        return None
            await ws.close(conn.close_code or CLOSE_POLICY, (conn.close_reason or "")[:120])
        except TimeoutError:
            await ws.close(CLOSE_TIMEOUT, "handshake not done in time")
        except ConnectionClosed:
            pass
        return None
