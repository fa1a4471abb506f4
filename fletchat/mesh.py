"""The WebSocket mesh: one connection per pair of peers, kept alive, validated at the edge.

A thin asyncio shell around ``protocol``: it owns sockets, tasks and timers; every rule (frame
format, limits, rate limiting, which duplicate connection survives, backoff) is a pure function
there. Nothing from the network reaches the app except validated ``Message`` and ``Peer`` objects,
and a misbehaving connection is closed on its own without touching the others.

All callbacks run on the event loop thread. ``broadcast``, ``add_peer_address`` and
``forget_peer_address`` may be called from any thread (Flet runs sync handlers in a thread pool,
zeroconf has its own threads): off the loop they are handed to it with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException

from fletchat import __version__
from fletchat.model import MAX_FRAME_BYTES, Message, Peer, new_id
from fletchat.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TIMEOUT,
    CLOSE_UNSUPPORTED_DATA,
    GOSSIP_MAX_FAILURES,
    MAX_SYNC_MESSAGES,
    RATE_BURST,
    RATE_FRAMES_PER_SECOND,
    REASON_DUPLICATE,
    REASON_SELF,
    RECONNECT_MAX,
    RECONNECT_MIN,
    AckFrame,
    Bye,
    ConnKey,
    HaveFrame,
    Hello,
    MsgFrame,
    PeerAddress,
    PeersFrame,
    Ping,
    Pong,
    ProtocolError,
    SyncFrame,
    TokenBucket,
    backoff_delay,
    decode_frame,
    encode_acks,
    encode_bye,
    encode_have,
    encode_hello,
    encode_msg,
    encode_peers,
    encode_ping,
    encode_pong,
    encode_sync,
    gossip_host,
    keep_new_connection,
)

log = logging.getLogger("fletchat.mesh")
_ws_log = logging.getLogger("fletchat.mesh.websockets")  # the library's own chatter, one level down

MAX_WANTED_ADDRESSES = 256  # addresses we keep dialing; bounds what gossip can make us do
SEND_QUEUE_FRAMES = 1024  # frames waiting for a slow peer before it is dropped
_ERROR_CODES = {1002, 1003, 1007, 1008, 1009, 1011}


def _close_reason(reason: str) -> str:
    """Close reasons must fit in 123 UTF-8 bytes."""
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return reason
    return data[:120].decode("utf-8", "ignore") + "..."


class CatchUp(Protocol):
    """History catch-up and delivery receipts, as the mesh needs them (the hub implements it).

    After the handshake each side sends ``have`` (its per-origin summary); each answers with what
    the other lacks, in bounded ``sync`` batches. An interrupted exchange resumes on the next
    connection, because the next ``have`` reflects what did arrive.
    """

    def summary(self) -> dict[str, int]: ...

    def missing(
        self, summary: dict[str, int], after: tuple[str, int] | None, limit: int
    ) -> list[Message]: ...

    def caught_up(self, msg: Message, peer_id: str) -> None: ...

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None: ...

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None: ...


@dataclass(eq=False)
class _Conn:
    """One WebSocket, before and after its handshake."""

    ws: Connection
    outgoing: bool
    remote_ip: str
    dial: int
    bucket: TokenBucket
    last_rx: float
    peer: Peer | None = None
    key: ConnKey | None = None
    registered: bool = False  # is (or was) the connection the mesh uses for this peer
    down_reason: str = ""
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(SEND_QUEUE_FRAMES)
    )
    writer: asyncio.Task[None] | None = None
    catchup_task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def describe(self) -> str:
        who = f"{self.peer.name} ({self.peer.id[:12]})" if self.peer else "unknown peer"
        return f"{who} at {self.remote_ip}, {'outgoing' if self.outgoing else 'incoming'}"


def _check_address(host: object, port: object) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError("peer host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid peer port {port!r}")


def _changed(old: _Conn, new: _Conn) -> bool:
    """Did the peer restart (new session) or change its name, device or address?"""
    assert old.peer and new.peer and old.key and new.key
    a, b = old.peer, new.peer
    return old.key.session != new.key.session or (a.name, a.device, a.host, a.port) != (
        b.name,
        b.device,
        b.host,
        b.port,
    )


@dataclass(eq=False)
class _Wanted:
    """An address we keep connecting to while it is wanted."""

    host: str
    port: int
    peer_id: str | None
    gossip: bool  # learned from another peer: given up after GOSSIP_MAX_FAILURES
    sticky: bool  # given without a peer id (--peer): forget_peer_address leaves it alone
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    live: bool = False  # the dial task is running a connection right now

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)


class Mesh:
    """WebSocket server + client connections to every known peer, with handshake, heartbeats,
    reconnects, sync and gossip. See ``docs/protocol.md``."""

    def __init__(
        self,
        me: Peer,
        *,
        on_message: Callable[[Message, str], Any],
        on_peer_up: Callable[[Peer], Any],
        on_peer_down: Callable[[Peer, str], Any],
        history: Callable[[], list[Message]] = list,
        catchup: CatchUp | None = None,
        host: str = "0.0.0.0",
        port: int = 0,
        heartbeat_interval: float = 2.0,
        heartbeat_timeout: float = 6.0,
        reconnect_min: float = RECONNECT_MIN,
        reconnect_max: float = RECONNECT_MAX,
        rate: float = RATE_FRAMES_PER_SECOND,
        burst: float = RATE_BURST,
    ) -> None:
        self.me = me
        self._on_message = on_message
        self._on_peer_up = on_peer_up
        self._on_peer_down = on_peer_down
        self._history = history
        self._catchup = catchup
        self._host = host
        self._listen_port = port
        self._hb_interval = heartbeat_interval
        self._hb_timeout = heartbeat_timeout
        self._close_timeout = min(2.0, heartbeat_timeout)
        self._reconnect = (reconnect_min, reconnect_max)
        self._rate = (rate, burst)
        self.port = 0
        self._session = new_id()  # tells a restarted copy of a peer from the running one
        self._dials = 0
        self._server: Server | None = None
        self._conns: set[_Conn] = set()
        self._by_id: dict[str, _Conn] = {}
        # peers whose connection the other side closed as a duplicate: their replacement is
        # probably mid-handshake, so on_peer_down waits a moment (see _unregister)
        self._pending_down: dict[str, tuple[_Conn, asyncio.TimerHandle]] = {}
        self._wanted: dict[tuple[str, int], _Wanted] = {}
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopping = False

    # ---- public API ----

    async def start(self) -> int:
        """Listen for peers; return the actual port (``port=0`` picks a free one)."""
        try:
            self._server = await serve(
                self._accept,
                self._host,
                self._listen_port,
                max_size=MAX_FRAME_BYTES,  # oversize frames are refused by websockets, cheaply
                compression=None,
                ping_interval=None,  # heartbeats are protocol frames
                open_timeout=max(self._hb_timeout, 2.0),
                close_timeout=self._close_timeout,
                logger=_ws_log,
            )
        except OSError as err:
            raise OSError(
                err.errno,
                f"cannot listen for peers on {self._host}:{self._listen_port}: "
                f"{err.strerror or err}",
            ) from err
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._started = True
        for want in list(self._wanted.values()):
            self._spawn_dialer(want)
        log.info("mesh listening on %s:%s as %s", self._host, self.port, self.me.id)
        return self.port

    async def stop(self) -> None:
        """Say bye to every peer, close every connection and the server, stop reconnecting."""
        if self._stopping:
            return
        self._stopping = True
        for want in self._wanted.values():
            if want.task is not None and not want.live:
                want.task.cancel()
        conns = list(self._conns)
        await asyncio.gather(*(self._say_bye(c) for c in conns), return_exceptions=True)
        for conn, handle in list(self._pending_down.values()):
            handle.cancel()
            self._emit_down(conn, conn.down_reason or "this peer stopped")
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), self._close_timeout + 1)
        tasks = [w.task for w in self._wanted.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._wanted.clear()

    def add_peer_address(self, host: str, port: int, peer_id: str | None = None) -> None:
        """Connect to ``host:port`` and keep reconnecting (backoff + jitter) while it is wanted.

        With a ``peer_id`` (discovery) the address replaces gossip-learned ones for that peer, and
        nothing is dialed while that peer is connected. Without one (``--peer``) the address
        stays wanted for the life of the mesh.
        """
        _check_address(host, port)
        self._on_loop(self._want, host, port, peer_id, gossip=False)

    def forget_peer_address(self, peer_id: str) -> None:
        """Discovery lost ``peer_id``: stop reconnecting to it (a live connection stays up)."""
        self._on_loop(self._forget, peer_id)

    def _forget(self, peer_id: str) -> None:
        for want in [w for w in self._wanted.values() if w.peer_id == peer_id and not w.sticky]:
            self._unwant(want)

    def broadcast(self, msg: Message, exclude: str | None = None) -> None:
        """Send ``msg`` once to every connected peer except ``exclude`` and its own origin."""
        self._on_loop(self._broadcast, msg, exclude)

    def _broadcast(self, msg: Message, exclude: str | None) -> None:
        frame = encode_msg(msg)
        for peer_id, conn in list(self._by_id.items()):
            if peer_id != exclude and peer_id != msg.origin:
                self._enqueue(conn, frame)

    def peers(self) -> list[Peer]:
        """Connected, handshaken peers, at the address they listen on."""
        return [c.peer for c in list(self._by_id.values()) if c.peer is not None]

    def open_connections(self) -> int:
        """Open WebSockets, handshaken or not (diagnostics and tests)."""
        return len(self._conns)

    # ---- wanted addresses and dialing ----

    def _on_loop(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` now if on the mesh's loop (or before start), else hand it to the loop."""
        loop = self._loop
        if loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))
                return
        fn(*args, **kwargs)

    def _want(self, host: str, port: int, peer_id: str | None, *, gossip: bool) -> None:
        _check_address(host, port)
        if self._stopping or peer_id == self.me.id:
            return
        if peer_id is not None and not gossip:
            for other in [w for w in self._wanted.values() if w.peer_id == peer_id and w.gossip]:
                if other.addr != (host, port):
                    self._unwant(other)
        want = self._wanted.get((host, port))
        if want is not None:
            if peer_id is not None:
                want.peer_id = peer_id
            if not gossip:
                want.gossip = False
            want.kick.set()  # re-announced: retry now rather than after the backoff
            return
        if gossip and len(self._wanted) >= MAX_WANTED_ADDRESSES:
            return
        want = _Wanted(host, port, peer_id, gossip=gossip, sticky=peer_id is None and not gossip)
        self._wanted[want.addr] = want
        if self._started:
            self._spawn_dialer(want)

    def _unwant(self, want: _Wanted) -> None:
        if self._wanted.get(want.addr) is want:
            del self._wanted[want.addr]
        if want.task is not None and not want.live:
            want.task.cancel()

    def _spawn_dialer(self, want: _Wanted) -> None:
        if want.task is None or want.task.done():
            want.task = asyncio.get_running_loop().create_task(
                self._dial_loop(want), name=f"fletchat-dial-{want.host}:{want.port}"
            )

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _dial_loop(self, want: _Wanted) -> None:
        attempt = 0
        lo, hi = self._reconnect
        while not self._stopping and self._wanted.get(want.addr) is want:
            if want.peer_id is not None and want.peer_id in self._by_id:
                attempt = 0
                await self._changed.wait()
                continue
            outcome = await self._dial_once(want)
            if outcome == REASON_SELF:
                log.info("%s:%s is this peer itself; not dialing it again", want.host, want.port)
                self._unwant(want)
                return
            if outcome in ("up", REASON_DUPLICATE):
                attempt = 0
            else:
                attempt += 1
                if want.gossip and attempt >= GOSSIP_MAX_FAILURES:
                    log.info("giving up on gossiped address %s:%s", want.host, want.port)
                    self._unwant(want)
                    return
            delay = backoff_delay(max(0, attempt - 1), random.random(), lo, hi)
            want.kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(want.kick.wait(), delay)

    async def _dial_once(self, want: _Wanted) -> str:
        self._dials += 1
        dial = self._dials
        host = f"[{want.host}]" if ":" in want.host else want.host
        uri = f"ws://{host}:{want.port}/"
        try:
            async with connect(
                uri,
                max_size=MAX_FRAME_BYTES,
                compression=None,
                ping_interval=None,
                open_timeout=self._hb_timeout,
                close_timeout=self._close_timeout,
                logger=_ws_log,
            ) as ws:
                want.live = True
                return await self._run(ws, outgoing=True, dial=dial, want=want)
        except (OSError, TimeoutError, WebSocketException) as err:
            log.debug("dialing %s failed: %s", uri, err or type(err).__name__)
            return "failed"
        finally:
            want.live = False

    # ---- one connection ----

    async def _accept(self, ws: ServerConnection) -> None:
        await self._run(ws, outgoing=False, dial=0, want=None)

    async def _run(self, ws: Connection, *, outgoing: bool, dial: int, want: _Wanted | None) -> str:
        """Handshake, register, read until closed; return "up", "duplicate", "self" or "failed"."""
        loop = asyncio.get_running_loop()
        remote = ws.remote_address
        conn = _Conn(
            ws,
            outgoing,
            str(remote[0]) if remote else "?",
            dial,
            TokenBucket(*self._rate, clock=time.monotonic),
            loop.time(),
        )
        self._conns.add(conn)
        heartbeat: asyncio.Task[None] | None = None
        outcome = "failed"
        try:
            hello = await self._handshake(conn)
            if hello is None:
                return outcome
            if hello.peer_id == self.me.id:
                await self._close(conn, CLOSE_NORMAL, REASON_SELF)
                return REASON_SELF
            if want is not None and want.peer_id != hello.peer_id:
                want.peer_id = hello.peer_id
            conn.peer = Peer(
                hello.peer_id, hello.name, hello.device, conn.remote_ip, hello.port, time.time()
            )
            conn.key = ConnKey(
                initiator=self.me.id if outgoing else hello.peer_id,
                session=hello.session,
                dial=dial if outgoing else hello.dial,
            )
            conn.writer = loop.create_task(self._write_loop(conn))
            if not self._register(conn):
                await self._close(conn, CLOSE_NORMAL, REASON_DUPLICATE)
                return REASON_DUPLICATE
            outcome = "up"
            heartbeat = loop.create_task(self._heartbeat(conn))
            await self._read_loop(conn)
        except ConnectionClosed as closed:
            self._log_closed(conn, closed)
        except Exception:
            log.exception("mesh connection with %s failed", conn.describe())
            with contextlib.suppress(Exception):
                await self._close(conn, CLOSE_TIMEOUT, "internal error")
        finally:
            for task in (heartbeat, conn.writer):
                if task is not None:
                    task.cancel()
            self._conns.discard(conn)
            # Closed by the other side as a duplicate: the connection it keeps is on its way.
            grace = self._hb_timeout if conn.ws.close_reason == REASON_DUPLICATE else 0.0
            self._unregister(conn, conn.down_reason or self._closed_reason(conn), grace)
            conn.done.set()
        return outcome

    async def _handshake(self, conn: _Conn) -> Hello | None:
        hello_out = Hello(
            self.me.id,
            self.me.name,
            self.me.device,
            self.port,
            __version__,
            self._session,
            conn.dial if conn.outgoing else 0,
        )
        await conn.ws.send(encode_hello(hello_out))
        try:
            raw = await asyncio.wait_for(conn.ws.recv(), self._hb_timeout)
        except TimeoutError:
            await self._close(conn, CLOSE_TIMEOUT, "no hello in time")
            return None
        conn.last_rx = asyncio.get_running_loop().time()
        frame = await self._decode(conn, raw)
        if frame is None:
            return None
        if not isinstance(frame, Hello):
            await self._close(conn, CLOSE_PROTOCOL_ERROR, "expected hello first")
            return None
        return frame

    async def _decode(self, conn: _Conn, raw: str | bytes) -> Any:
        """A validated frame, or ``None`` after closing the connection with the reason."""
        if not isinstance(raw, str):
            await self._close(conn, CLOSE_UNSUPPORTED_DATA, "binary frames are not supported")
            return None
        try:
            return decode_frame(raw)
        except ProtocolError as err:
            await self._close(conn, err.code, err.reason)
            return None

    async def _read_loop(self, conn: _Conn) -> None:
        assert conn.peer is not None
        loop = asyncio.get_running_loop()
        while True:
            raw = await conn.ws.recv()
            conn.last_rx = loop.time()
            if not conn.bucket.allow():
                await self._close(
                    conn, CLOSE_POLICY, f"rate limit exceeded ({conn.bucket.rate:g} frames/s)"
                )
                return
            frame = await self._decode(conn, raw)
            if frame is None:
                return
            match frame:
                case MsgFrame(message=msg):
                    self._call(self._on_message, msg, conn.peer.id)
                    self._ack(conn, (msg,))
                case SyncFrame(messages=msgs):
                    # Catch-up batches are history: stored and shown, not relayed to everyone.
                    deliver = self._on_message if self._catchup is None else self._catchup.caught_up
                    for msg in msgs:
                        self._call(deliver, msg, conn.peer.id)
                    self._ack(conn, msgs)
                case HaveFrame(summary=summary):
                    if self._catchup is not None:
                        self._call(self._catchup.peer_has, conn.peer.id, summary)
                        if conn.catchup_task is not None:
                            conn.catchup_task.cancel()
                        conn.catchup_task = loop.create_task(self._send_missing(conn, summary))
                case AckFrame(ids=ids):
                    if self._catchup is not None:
                        self._call(self._catchup.acked, conn.peer.id, ids)
                case Ping():
                    self._enqueue(conn, encode_pong())
                case Pong():
                    pass
                case PeersFrame(peers=addresses):
                    self._learn(addresses, conn)
                case Bye(reason=reason):
                    conn.down_reason = f"left: {reason}" if reason else "left"
                    await self._close(conn, CLOSE_NORMAL, "bye")
                    return
                case Hello():
                    await self._close(conn, CLOSE_PROTOCOL_ERROR, "unexpected second hello")
                    return

    async def _write_loop(self, conn: _Conn) -> None:
        """Send queued frames in order; ``None`` means say bye was queued, now close."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await conn.queue.get()
                if frame is None:
                    await conn.ws.close(CLOSE_GOING_AWAY, "shutting down")
                    return
                await conn.ws.send(frame)

    async def _heartbeat(self, conn: _Conn) -> None:
        """Ping every interval; drop the peer when nothing arrived for ``heartbeat_timeout``."""
        loop = asyncio.get_running_loop()
        tick = min(self._hb_interval, self._hb_timeout / 4)
        last_ping = loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            silent = now - conn.last_rx
            if silent > self._hb_timeout:
                log.info("no frame from %s for %.1f s: dropping it", conn.describe(), silent)
                conn.down_reason = "heartbeat timeout"
                self._unregister(conn, conn.down_reason)
                await conn.ws.close(CLOSE_TIMEOUT, "heartbeat timeout")
                return
            if now - last_ping >= self._hb_interval:
                last_ping = now
                self._enqueue(conn, encode_ping())

    # ---- registry: one connection per peer ----

    def _register(self, conn: _Conn) -> bool:
        """Make ``conn`` the connection for its peer, or return False if an existing one wins."""
        assert conn.peer is not None and conn.key is not None
        peer = conn.peer
        existing = self._by_id.get(peer.id)
        previous = existing
        if existing is not None:
            assert existing.key is not None
            if not keep_new_connection(existing.key, conn.key):
                log.info("keeping the existing connection with %s", existing.describe())
                return False
            log.info("connection with %s replaces an older one", conn.describe())
            existing.registered = False
            asyncio.get_running_loop().create_task(
                self._close(existing, CLOSE_NORMAL, REASON_DUPLICATE)
            )
        pending = self._pending_down.pop(peer.id, None)
        if pending is not None:
            pending[1].cancel()
            previous = previous or pending[0]
        # A replacement is news only if the peer restarted or moved; the hub treats up as upsert.
        announce = previous is None or _changed(previous, conn)
        self._by_id[peer.id] = conn
        conn.registered = True
        if announce:
            log.info("peer up: %s", conn.describe())
            self._call(self._on_peer_up, peer)
        self._welcome(conn)
        if announce and peer.port:
            news = encode_peers([PeerAddress(peer.id, peer.host, peer.port)])
            for other in self._by_id.values():
                if other is not conn:
                    self._enqueue(other, news)
        self._notify_changed()
        return True

    def _unregister(self, conn: _Conn, reason: str, grace: float = 0.0) -> None:
        """Stop using ``conn``; report the peer down now, or after ``grace`` s unless replaced."""
        if conn.registered and conn.peer is not None and self._by_id.get(conn.peer.id) is conn:
            del self._by_id[conn.peer.id]
            if grace > 0 and not self._stopping:
                handle = asyncio.get_running_loop().call_later(grace, self._emit_down, conn, reason)
                self._pending_down[conn.peer.id] = (conn, handle)
            else:
                self._emit_down(conn, reason)
            self._notify_changed()
        conn.registered = False

    def _emit_down(self, conn: _Conn, reason: str) -> None:
        assert conn.peer is not None
        pending = self._pending_down.get(conn.peer.id)
        if pending is not None and pending[0] is conn:
            del self._pending_down[conn.peer.id]
        log.info("peer down: %s (%s)", conn.describe(), reason)
        self._call(self._on_peer_down, conn.peer, reason)

    def _welcome(self, conn: _Conn) -> None:
        """Right after the handshake: recent history (sync), our catch-up summary (have) and the
        peers we know (gossip)."""
        try:
            history = list(self._history())
        except Exception:
            log.exception("history callback failed")
            history = []
        for frame in encode_sync(history):
            self._enqueue(conn, frame)
        if self._catchup is not None:
            try:
                self._enqueue(conn, encode_have(self._catchup.summary()))
            except Exception:
                log.exception("catch-up summary failed")
        known = [
            PeerAddress(c.peer.id, c.peer.host, c.peer.port)
            for c in self._by_id.values()
            if c is not conn and c.peer is not None and c.peer.port
        ]
        if known:
            self._enqueue(conn, encode_peers(known))

    def _learn(self, addresses: tuple[PeerAddress, ...], via: _Conn) -> None:
        """Gossip: dial peers we neither know nor already try to reach."""
        wanted_ids = {w.peer_id for w in self._wanted.values()}
        for a in addresses:
            if a.peer_id == self.me.id or a.peer_id in self._by_id or a.peer_id in wanted_ids:
                continue
            host = gossip_host(a.host, via.remote_ip)
            log.info("learned peer %s at %s:%s from %s", a.peer_id, host, a.port, via.describe())
            self._want(host, a.port, a.peer_id, gossip=True)
            wanted_ids.add(a.peer_id)

    async def _send_missing(self, conn: _Conn, summary: dict[str, int]) -> None:
        """Answer a ``have``: what the peer lacks, in bounded batches, without flooding its queue
        (or its rate limit: one frame per batch)."""
        assert self._catchup is not None
        after: tuple[str, int] | None = None
        sent = 0
        while conn.peer is not None and not conn.done.is_set():
            try:
                batch = self._catchup.missing(summary, after, MAX_SYNC_MESSAGES)
            except Exception:
                log.exception("catch-up query failed")
                return
            for frame in encode_sync(batch, limit=len(batch)):
                while conn.queue.qsize() > SEND_QUEUE_FRAMES // 4:
                    await asyncio.sleep(0.02)
                self._enqueue(conn, frame)
                await asyncio.sleep(1 / (conn.bucket.rate * 0.8))  # stay under its rate limit
            sent += len(batch)
            if len(batch) < MAX_SYNC_MESSAGES:
                break
            last = batch[-1]
            after = (last.origin, last.seq)
        if sent:
            log.info("caught up %s with %d messages", conn.describe(), sent)

    def _ack(self, conn: _Conn, msgs: tuple[Message, ...] | list[Message]) -> None:
        """Receipts to the origin for its own numbered messages (what makes "delivered" true)."""
        if self._catchup is None or conn.peer is None:
            return
        ids = [m.id for m in msgs if m.origin == conn.peer.id and m.seq > 0]
        for frame in encode_acks(ids):
            self._enqueue(conn, frame)

    # ---- helpers ----

    def _enqueue(self, conn: _Conn, frame: str) -> None:
        try:
            conn.queue.put_nowait(frame)
        except asyncio.QueueFull:
            if conn.down_reason != "too slow":
                conn.down_reason = "too slow"
                asyncio.get_running_loop().create_task(
                    self._close(conn, CLOSE_POLICY, "too slow: send queue full")
                )

    async def _close(self, conn: _Conn, code: int, reason: str) -> None:
        """Close ``conn``; the app hears that the peer is down now, not after the close handshake
        (which can take ``close_timeout`` when the other side is busy or gone)."""
        if code in _ERROR_CODES:
            log.warning("closing connection with %s: %s (%d)", conn.describe(), reason, code)
        conn.down_reason = conn.down_reason or reason
        self._unregister(conn, conn.down_reason)
        with contextlib.suppress(Exception):
            await conn.ws.close(code, _close_reason(reason))

    async def _say_bye(self, conn: _Conn) -> None:
        conn.down_reason = conn.down_reason or "this peer stopped"
        if conn.writer is not None and not conn.writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(encode_bye("shutting down"))
                conn.queue.put_nowait(None)
        else:
            with contextlib.suppress(Exception):
                await conn.ws.close(CLOSE_GOING_AWAY, "shutting down")
        try:
            await asyncio.wait_for(conn.done.wait(), self._close_timeout + 1)
        except TimeoutError:
            transport = getattr(conn.ws, "transport", None)
            if transport is not None:
                transport.abort()

    def _closed_reason(self, conn: _Conn) -> str:
        code, reason = conn.ws.close_code, conn.ws.close_reason
        if code is None:
            return "connection lost"
        return f"closed ({code}{': ' + reason if reason else ''})"

    def _log_closed(self, conn: _Conn, closed: ConnectionClosed) -> None:
        sent = closed.sent
        if sent is not None and sent.code in _ERROR_CODES and closed.rcvd_then_sent is not True:
            # websockets closed it for us, e.g. a frame over max_size (1009)
            log.warning(
                "closed connection with %s: %s (%d)", conn.describe(), sent.reason, sent.code
            )
            conn.down_reason = conn.down_reason or sent.reason
        else:
            log.debug("connection with %s closed: %s", conn.describe(), closed)

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        """App callbacks must not break the mesh: log what they raise and carry on."""
        try:
            callback(*args)
        except Exception:
            log.exception("mesh callback %s failed", getattr(callback, "__name__", callback))
