"""The WebSocket mesh: sockets, tasks and queues around the pure peer core.

Every decision lives in a small pure module that unit tests drive without sockets:
``peer.connection`` (one connection's handshake, limits and verdicts), ``peer.registry`` (one
connection per peer, the announce rule, slot admission), ``peer.dialer`` (whom to dial, backoff,
which adverts to believe) and ``peer.catchup`` (pacing). ``mesh_session`` serves each socket and
``mesh_link`` holds the shared state; this module is the public face and the dial tasks. The app
behind the mesh is a ``MeshHost`` (the hub). See ``docs/protocol.md``.

All callbacks run on the event loop thread. ``broadcast``, ``add_peer_address``,
``forget_peer_address`` and ``presence_changed`` may be called from any thread (Flet runs sync
handlers in a thread pool, zeroconf has its own threads): off the loop they are handed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, serve
from websockets.exceptions import WebSocketException

from fletchat.aio import wait_event
from fletchat.mesh_link import LinkCore, MeshHost, MeshSettings
from fletchat.mesh_session import Sessions
from fletchat.model import MAX_FRAME_BYTES, Message, Peer
from fletchat.peer.connection import REASON_BLOCKED, State
from fletchat.peer.dialer import Outcome, Source, Wanted
from fletchat.peer.policy import NoTrust, TrustPolicy
from fletchat.protocol import CLOSE_POLICY, encode_msg

__all__ = ["Mesh", "MeshHost", "MeshSettings"]

log = logging.getLogger("fletchat.mesh")
_ws_log = logging.getLogger("fletchat.mesh.websockets")  # the library's own chatter, one level down


def _check_address(host: object, port: object) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError("peer host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid peer port {port!r}")


class Mesh:
    """WebSocket server + client connections to every known peer. See the module docstring."""

    def __init__(
        self,
        me: Peer,
        host: MeshHost,
        settings: MeshSettings | None = None,
        trust: TrustPolicy | None = None,
    ) -> None:
        settings = settings if settings is not None else MeshSettings()
        self.me = me
        self.trust: TrustPolicy = trust if trust is not None else NoTrust()
        self._core = LinkCore(me, host, settings, self.trust)
        self._sessions = Sessions(self._core, self._want)
        self._dials = 0
        self._server: Server | None = None
        self._dial_tasks: dict[tuple[str, int], tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        # Other lanes on the same port, by request path (files: fletchat/files/lane.py); "/" = chat.
        self.routes: dict[str, Callable[[Any], Awaitable[None]]] = {}

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def settings(self) -> MeshSettings:
        return self._core.settings

    @property
    def _registry(self):  # for tests and diagnostics
        return self._core.registry

    @property
    def _dialer(self):
        return self._core.dialer

    # ---- public API ----

    async def start(self) -> int:
        """Listen for peers; return the actual port (``port=0`` picks a free one)."""
        s = self._core.settings
        try:
            self._server = await serve(
                self._route, s.host, s.port,
                max_size=MAX_FRAME_BYTES,  # oversize frames are refused by websockets, cheaply
                compression=None,
                ping_interval=None,  # heartbeats are protocol frames
                open_timeout=s.handshake_timeout,
                close_timeout=min(2.0, s.heartbeat_timeout),
                logger=_ws_log,
                ssl=self.trust.server_context(),
            )
        except OSError as err:
            raise OSError(
                err.errno,
                f"cannot listen for peers on {s.host}:{s.port}: {err.strerror or err}",
            ) from err
        self._core.port = self._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._started = True
        for want in list(self._core.dialer.wanted.values()):
            self._spawn_dialer(want)
        log.info("mesh listening on %s:%s as %s", s.host, self.port, self.me.id)
        return self.port

    async def _route(self, ws: Any) -> None:
        lane = self.routes.get(ws.request.path) if ws.request is not None else None
        await (lane or self._sessions.accept)(ws)

    async def stop(self) -> None:
        """Say bye to every peer, close every connection and the server, stop reconnecting;
        all within ``shutdown_timeout`` (+ the server's own close), however busy the peers are."""
        if self._core.stopping:
            return
        self._core.stopping = True
        links = list(self._core.links)
        for link in links:
            link.conn.close_request("shutting down")
            link.down_reason = link.down_reason or "this peer stopped"
            link.wake.set()
        if links:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(link.done.wait()) for link in links],
                timeout=self._core.settings.shutdown_timeout,
            )
            for waiter in late:
                waiter.cancel()
        for link in links:
            if not link.done.is_set():
                transport = getattr(link.ws, "transport", None)
                if transport is not None:
                    transport.abort()
        for peer in self._core.registry.drain_pending():
            self._core.call(self._core.app.peer_down, peer, "this peer stopped")
        if self._server is not None:
            self._server.close(close_connections=False)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 0.5)
        tasks = [t for t, _ in self._dial_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._core.stalls.close()
        self._dial_tasks.clear()
        self._core.dialer.wanted.clear()

    def add_peer_address(
        self, host: str, port: int, peer_id: str | None = None, *, discovered: bool = False
    ) -> None:
        """Connect to ``host:port`` and keep reconnecting (backoff + jitter) while it is wanted.

        ``discovered``: from an mDNS advert (anyone on the LAN can send one), so loopback and our
        own addresses are never dialed and adverts are bounded. With a ``peer_id`` the address
        replaces gossip-learned ones for that peer, and nothing is dialed while that peer is
        connected. Without one (``--peer``) the address stays wanted for the life of the mesh.
        """
        _check_address(host, port)
        source = Source.DISCOVERY if discovered else Source.MANUAL
        self._on_loop(self._want, host, port, peer_id, source)

    def forget_peer_address(self, peer_id: str) -> None:
        """Discovery lost ``peer_id``: stop reconnecting to it (a live connection stays up)."""
        self._on_loop(self._drop_wanted, lambda: self._core.dialer.forget(peer_id))

    def block(self, peer_id: str, name: str = "") -> None:
        """Block ``peer_id`` (persisted by the trust policy): drop its connection, stop dialing
        it, refuse it from now on, and drop messages written by it that others relay."""
        self.trust.block(peer_id, name)
        self._on_loop(self._block, peer_id)

    def unblock(self, peer_id: str) -> None:
        self.trust.unblock(peer_id)

    def is_blocked(self, peer_id: str) -> bool:
        return self.trust.is_blocked(peer_id)

    def broadcast(self, msg: Message, exclude: str | None = None) -> None:
        """Send ``msg`` once to every connected peer except ``exclude`` and its own origin."""
        self._on_loop(self._broadcast, msg, exclude)

    def send_live(self, frame: str) -> None:
        """A live signal (``typing``/``read``, already encoded) to every connected peer."""
        self._on_loop(self._send_all, frame)

    def _send_all(self, frame: str) -> None:
        for link in self._core.registry.handles():
            self._core.send(link, frame)

    def presence_changed(self) -> None:
        """The people in our local sessions changed: tell every connected peer."""
        self._on_loop(self._send_presence_all)

    def peers(self) -> list[Peer]:
        """Connected, handshaken peers, at the address they listen on."""
        return self._core.registry.peers()

    def open_connections(self) -> int:
        """Open WebSockets, handshaken or not (diagnostics and tests)."""
        return len(self._core.links)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` now if on the mesh's loop (or before start), else hand it to the loop."""
        loop = self._loop
        if loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(fn, *args)
                return
        fn(*args)

    def _block(self, peer_id: str) -> None:
        self._drop_wanted(lambda: self._core.dialer.forget_all(peer_id))
        for link in [lk for lk in self._core.links if lk.peer is not None and lk.peer.id == peer_id]:
            log.warning("blocked peer %s: closing its connection", link.describe())
            self._core.close(link, CLOSE_POLICY, REASON_BLOCKED)

    def _broadcast(self, msg: Message, exclude: str | None) -> None:
        """A relay (``exclude`` set) also skips neighbours that told us they are connected to
        the origin: in a full mesh they have it from the author; ``have`` repairs any gap."""
        targets = [
            link for peer_id, link in self._core.registry.items()
            if peer_id not in (exclude, msg.origin)
            and (exclude is None or msg.origin not in link.neighbours)
        ]
        if not targets:  # in a full mesh most relays go to nobody: no signature, no encoding
            return
        frame = encode_msg(msg, self._core.sig_for(msg))
        for link in targets:
            self._core.send(link, frame)

    def _send_presence_all(self) -> None:
        frame = self._core.presence_frame()
        for link in self._core.registry.handles():
            self._core.send(link, frame)

    def _want(self, host: str, port: int, peer_id: str | None, source: Source) -> None:
        if self._core.stopping or (peer_id is not None and self.trust.is_blocked(peer_id)):
            return
        result = self._core.dialer.want(host, port, peer_id, source)
        if result.refused:
            log.info("not dialing %s:%s (%s): %s", host, port, source, result.refused)
        self._drop_wanted(lambda: list(result.dropped))
        if result.kicked is not None and result.kicked.addr in self._dial_tasks:
            self._dial_tasks[result.kicked.addr][1].set()
        if result.added is not None and self._started:
            self._spawn_dialer(result.added)

    def _drop_wanted(self, drop: Callable[[], list[Wanted]]) -> None:
        for want in drop():
            task = self._dial_tasks.get(want.addr)
            if task is not None and not self._dialing_live(want):
                task[0].cancel()

    def _dialing_live(self, want: Wanted) -> bool:
        return any(lk.conn.outgoing and lk.conn.state is State.OPEN and lk.peer is not None
                   and lk.peer.id == want.peer_id for lk in self._core.links)

    def _spawn_dialer(self, want: Wanted) -> None:
        current = self._dial_tasks.get(want.addr)
        if current is None or current[0].done():
            task = asyncio.get_running_loop().create_task(
                self._dial_loop(want), name=f"fletchat-dial-{want.host}:{want.port}"
            )
            self._dial_tasks[want.addr] = (task, asyncio.Event())

    async def _dial_loop(self, want: Wanted) -> None:
        try:
            while not self._core.stopping and self._core.dialer.is_wanted(want):
                if want.peer_id is not None and want.peer_id in self._core.registry:
                    await self._core.changed.wait()
                    continue
                outcome = await self._dial_once(want)
                delay = self._core.dialer.after(want, outcome, random.random())
                if delay is None:
                    log.info("stopped dialing %s:%s (%s)", want.host, want.port, outcome)
                    return
                kick = self._dial_tasks[want.addr][1]
                kick.clear()
                await wait_event(kick, delay)
        finally:
            entry = self._dial_tasks.get(want.addr)
            if entry is not None and entry[0] is asyncio.current_task():
                del self._dial_tasks[want.addr]

    async def _dial_once(self, want: Wanted) -> Outcome:
        self._dials += 1
        dial = self._dials
        host = f"[{want.host}]" if ":" in want.host else want.host
        client_ssl = self.trust.client_context()
        uri = f"{'wss' if client_ssl else 'ws'}://{host}:{want.port}/"
        try:
            async with connect(
                uri, ssl=client_ssl, max_size=MAX_FRAME_BYTES, compression=None,
                ping_interval=None, open_timeout=self._core.settings.handshake_timeout,
                close_timeout=min(2.0, self._core.settings.heartbeat_timeout), logger=_ws_log,
            ) as ws:
                return await self._sessions.run(ws, outgoing=True, dial=dial, want=want)
        except (OSError, TimeoutError, WebSocketException, ssl.SSLError) as err:
            log.debug("dialing %s failed: %s", uri, err or type(err).__name__)
            return Outcome.FAILED
