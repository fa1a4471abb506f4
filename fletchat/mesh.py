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
import hashlib
import logging
import random
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException

from fletchat import __version__
from fletchat.model import MAX_FRAME_BYTES, FletChatError, Message, Peer, new_id
from fletchat.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TIMEOUT,
    CLOSE_UNSUPPORTED_DATA,
    GOSSIP_MAX_FAILURES,
    MAX_REFUSAL_CHARS,
    MAX_REFUSED_IDS,
    MAX_SYNC_MESSAGES,
    NONCE_BYTES,
    RATE_BURST,
    RATE_FRAMES_PER_SECOND,
    REASON_DUPLICATE,
    REASON_SELF,
    RECONNECT_MAX,
    RECONNECT_MIN,
    AckFrame,
    Auth,
    Bye,
    ConnKey,
    HaveFrame,
    Hello,
    MsgFrame,
    PeerAddress,
    PeersFrame,
    Ping,
    Pong,
    PresenceFrame,
    ProtocolError,
    RefusedFrame,
    SyncFrame,
    TokenBucket,
    auth_transcript,
    backoff_delay,
    decode_b64,
    decode_frame,
    encode_acks,
    encode_auth,
    encode_bye,
    encode_frame,
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

ANTI_ENTROPY_SECONDS = 20.0  # how often connected peers compare summaries (``have``)
MAX_WANTED_ADDRESSES = 256  # addresses we keep dialing; bounds what gossip can make us do
SEND_QUEUE_FRAMES = 1024  # frames waiting for a slow peer before it is dropped
MAX_PEERS = 64  # handshaken peers at once; more are refused with 1013 (a LAN chat, not a botnet)
MAX_CONNECTIONS = 128  # open sockets at once, handshaken or not (dials + accepts + duplicates)
CLOSE_TRY_AGAIN = 1013  # too many peers/connections right now
REASON_BLOCKED = "blocked"
REASON_KEY_CHANGED = "identity key changed"
_ERROR_CODES = {1002, 1003, 1007, 1008, 1009, 1011, 1013}


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

    async def summary_async(self) -> dict[str, int]: ...

    def missing(
        self, summary: dict[str, int], after: tuple[str, int] | None, limit: int, peer: str = ""
    ) -> list[Message]: ...

    def receive(
        self, msg: Message, from_peer: str, *, verified: bool, relay: bool = True
    ) -> Any: ...  # events.Acceptance

    async def wait_stored(self, ids: tuple[str, ...]) -> None: ...

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None: ...

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None: ...

    def refused(self, peer_id: str, refusals: tuple[tuple[str, str], ...]) -> None: ...

    def local_presence(self) -> tuple[Any, ...]: ...  # events.Presence

    def peer_presence(self, peer_id: str, people: tuple[Any, ...]) -> None: ...


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
    # peers this neighbour told us (gossip) it is connected to: no need to relay their messages
    neighbours: set[str] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    nonce: str = ""  # our challenge in this connection's hello (secured meshes)

    def describe(self) -> str:
        who = f"{self.peer.name} ({self.peer.id[:12]})" if self.peer else "unknown peer"
        if self.peer is not None and self.peer.fingerprint:
            who += f" [{self.peer.fingerprint}]"
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
        anti_entropy: float = ANTI_ENTROPY_SECONDS,
        trust: Any = None,
        on_identity_warning: Callable[[str, str, str, str], Any] | None = None,
        max_peers: int = MAX_PEERS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """With ``trust`` (a ``fletchat.trust.Trust``) every connection is TLS 1.3 and every peer
        proves its key in the handshake (docs/security.md); without it (tests of the framing
        only) connections are plain WebSockets with no authentication."""
        self.me = me
        self._trust = trust
        self._on_identity_warning = on_identity_warning
        self._max_peers = max_peers
        self._max_connections = max_connections
        self._warned: set[tuple[str, bytes]] = set()
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        self._cert_sha256 = ""
        if trust is not None:
            self._server_ssl = trust.identity.server_context()
            self._client_ssl = trust.identity.client_context()
            self._cert_sha256 = hashlib.sha256(trust.identity.cert_der).hexdigest()
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
        self._anti_entropy = anti_entropy
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
        self._blocked_here: set[str] = set()  # blocks when there is no trust store (tests)
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
                ssl=self._server_ssl,
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

    def block(self, peer_id: str, name: str = "") -> None:
        """Block ``peer_id`` (persisted by ``trust``): drop its connection, stop dialing it, refuse
        it from now on, and drop messages written by it that others relay."""
        if self._trust is not None:
            self._trust.store.block(peer_id, name)
        else:
            self._blocked_here.add(peer_id)
        self._on_loop(self._block, peer_id)

    def unblock(self, peer_id: str) -> None:
        if self._trust is not None:
            self._trust.store.unblock(peer_id)
        self._blocked_here.discard(peer_id)

    def is_blocked(self, peer_id: str) -> bool:
        if peer_id in self._blocked_here:
            return True
        return self._trust is not None and self._trust.store.is_blocked(peer_id)

    def _block(self, peer_id: str) -> None:
        for want in [w for w in self._wanted.values() if w.peer_id == peer_id]:
            self._unwant(want)
        for conn in [c for c in self._conns if c.peer is not None and c.peer.id == peer_id]:
            log.warning("blocked peer %s: closing its connection", conn.describe())
            asyncio.get_running_loop().create_task(self._close(conn, CLOSE_POLICY, REASON_BLOCKED))

    def presence_changed(self) -> None:
        """The hub's local sessions changed: tell every open connection who is here now."""
        self._on_loop(self._send_presence)

    def _send_presence(self, conn: _Conn | None = None) -> None:
        if self._catchup is None:
            return
        people = tuple((p.name, p.device, p.since) for p in self._catchup.local_presence())
        frame = encode_frame(PresenceFrame(people))
        for c in [conn] if conn is not None else list(self._by_id.values()):
            self._enqueue(c, frame)

    def broadcast(self, msg: Message, exclude: str | None = None) -> None:
        """Send ``msg`` once to every connected peer except ``exclude`` and its own origin."""
        self._on_loop(self._broadcast, msg, exclude)

    def _sig_for(self, msg: Message) -> str:
        if self._trust is None:
            return ""
        try:
            return self._trust.sig_for(msg)
        except Exception:
            log.exception("signature lookup failed for %s", msg.id)
            return ""

    def _broadcast(self, msg: Message, exclude: str | None) -> None:
        """Send to every peer but ``exclude`` and the origin. A relay (``exclude`` set) also skips
        neighbours that told us they are connected to the origin: in a full mesh they already have
        it from the author, and the periodic ``have`` exchange repairs any gap."""
        if not self._by_id:
            return
        frame = encode_msg(msg, self._sig_for(msg))
        relay = exclude is not None
        for peer_id, conn in list(self._by_id.items()):
            if peer_id == exclude or peer_id == msg.origin:
                continue
            if relay and msg.origin in conn.neighbours:
                continue
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
        if peer_id is not None and self.is_blocked(peer_id):
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
            if outcome == REASON_BLOCKED:
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
        uri = f"{'wss' if self._client_ssl else 'ws'}://{host}:{want.port}/"
        try:
            async with connect(
                uri,
                ssl=self._client_ssl,
                max_size=MAX_FRAME_BYTES,
                compression=None,
                ping_interval=None,
                open_timeout=self._hb_timeout,
                close_timeout=self._close_timeout,
                logger=_ws_log,
            ) as ws:
                want.live = True
                return await self._run(ws, outgoing=True, dial=dial, want=want)
        except (OSError, TimeoutError, WebSocketException, ssl.SSLError) as err:
            log.debug("dialing %s failed: %s", uri, err or type(err).__name__)
            return "failed"
        finally:
            want.live = False

    # ---- one connection ----

    async def _accept(self, ws: ServerConnection) -> None:
        if len(self._conns) >= self._max_connections:
            log.warning("refusing a connection from %s: %d connections open",
                        ws.remote_address, len(self._conns))
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_TRY_AGAIN, "too many connections; try again later")
            return
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
            if self.is_blocked(hello.peer_id):
                log.info("refusing blocked peer %s at %s", hello.peer_id, conn.remote_ip)
                await self._close(conn, CLOSE_POLICY, REASON_BLOCKED)
                if want is not None:
                    self._unwant(want)
                return REASON_BLOCKED
            fp = ""
            if self._trust is not None:
                fp = await self._authenticate(conn, hello)
                if not fp:
                    return outcome
            if (
                hello.peer_id not in self._by_id
                and hello.peer_id not in self._pending_down
                and len(self._by_id) >= self._max_peers
            ):
                await self._close(conn, CLOSE_TRY_AGAIN, f"too many peers ({self._max_peers})")
                return outcome
            if want is not None and want.peer_id != hello.peer_id:
                want.peer_id = hello.peer_id
            conn.peer = Peer(
                hello.peer_id, hello.name, hello.device, conn.remote_ip, hello.port, time.time(), fp
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
        if self._trust is not None:
            conn.nonce = secrets.token_hex(NONCE_BYTES)
            hello_out = replace(hello_out, key=self._trust.identity.key_text, nonce=conn.nonce)
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

    async def _authenticate(self, conn: _Conn, hello: Hello) -> str:
        """Prove our key and check the peer's (see docs/security.md); return the peer's
        fingerprint, or "" after closing the connection with the reason."""
        from fletchat.identity import cert_public_key, fingerprint, verify_signature
        from fletchat.trust import CHANGED, NEW

        assert self._trust is not None
        if not hello.key:
            await self._close(conn, CLOSE_POLICY, "hello without a key: this peer requires one")
            return ""
        key = decode_b64(hello.key)
        if conn.outgoing:
            ssl_object = conn.ws.transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der or cert_public_key(der) != key:
                await self._close(conn, CLOSE_POLICY, "TLS certificate does not match hello key")
                return ""
            cert_sha256 = hashlib.sha256(der).hexdigest()
            client_nonce, server_nonce = conn.nonce, hello.nonce
        else:
            cert_sha256 = self._cert_sha256
            client_nonce, server_nonce = hello.nonce, conn.nonce
        mine, theirs = ("client", "server") if conn.outgoing else ("server", "client")
        common = {
            "server_cert_sha256": cert_sha256,
            "client_nonce": client_nonce,
            "server_nonce": server_nonce,
        }
        proof = auth_transcript(
            role=mine, signer_id=self.me.id, signer_key=self._trust.identity.key_text,
            other_id=hello.peer_id, **common,
        )
        await conn.ws.send(encode_auth(self._trust.identity.sign(proof)))
        try:
            raw = await asyncio.wait_for(conn.ws.recv(), self._hb_timeout)
        except TimeoutError:
            await self._close(conn, CLOSE_TIMEOUT, "no auth in time")
            return ""
        frame = await self._decode(conn, raw)
        if frame is None:
            return ""
        if not isinstance(frame, Auth):
            await self._close(conn, CLOSE_PROTOCOL_ERROR, "expected auth after hello")
            return ""
        expected = auth_transcript(
            role=theirs, signer_id=hello.peer_id, signer_key=hello.key, other_id=self.me.id,
            **common,
        )
        if not verify_signature(key, decode_b64(frame.sig), expected):
            await self._close(conn, CLOSE_POLICY, "authentication failed: bad signature")
            return ""
        check = self._trust.store.check(hello.peer_id, key, hello.name)
        new_fp = fingerprint(key)
        if check.status == CHANGED:
            self._identity_changed(hello, check.old_fingerprint, new_fp, key)
            await self._close(conn, CLOSE_POLICY, REASON_KEY_CHANGED)
            return ""
        if check.status == NEW:
            log.info("first contact with %s (%s): key %s trusted on first use",
                     hello.name, hello.peer_id, new_fp)
        return new_fp

    def _identity_changed(self, hello: Hello, old_fp: str, new_fp: str, key: bytes) -> None:
        """A known peer id came with another key: refuse it and say so loudly (once per key)."""
        first = (hello.peer_id, key) not in self._warned
        self._warned.add((hello.peer_id, key))
        (log.error if first else log.info)(
            "IDENTITY WARNING: peer id %s (calling itself %r) presented key %s, but we know it "
            "as %s. Refused: this may be someone impersonating it. If its owner reinstalled, "
            "compare fingerprints with them and reset it (--forget-peer %s).",
            hello.peer_id, hello.name, new_fp, old_fp, hello.peer_id,
        )
        if first and self._on_identity_warning is not None:
            self._call(self._on_identity_warning, hello.peer_id, hello.name, old_fp, new_fp)

    def _accept_message(self, msg: Message, sig: str, conn: _Conn) -> str | None:
        """Blocked origins and forged messages stop here (``None``); otherwise the signature
        status, "verified" or "unverified" (unknown origins pass, unverified)."""
        if self.is_blocked(msg.origin):
            return None
        if self._trust is None:
            return "unverified"
        from fletchat.trust import REFUSED

        try:
            status = self._trust.check_message(msg, sig)
        except Exception:
            log.exception("checking the signature of %s failed", msg.id)
            return None
        if status == REFUSED:
            log.warning(
                "dropped message %s from %s: it claims origin %s but %s", msg.id,
                conn.describe(), msg.origin,
                "is not signed" if not sig else "its signature does not match that peer's key",
            )
            return None
        return str(status)

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
                case MsgFrame(message=msg, sig=sig):
                    self._deliver(conn, ((msg, sig),), relay=True)
                case SyncFrame(messages=msgs, sigs=sigs):
                    # Catch-up batches are history: stored and shown, not relayed to everyone.
                    pairs = tuple(zip(msgs, sigs or ("",) * len(msgs), strict=True))
                    self._deliver(conn, pairs, relay=False)
                case HaveFrame(summary=summary):
                    if self._catchup is not None:
                        self._call(self._catchup.peer_has, conn.peer.id, summary)
                        if conn.catchup_task is not None:
                            conn.catchup_task.cancel()
                        conn.catchup_task = loop.create_task(self._send_missing(conn, summary))
                case PresenceFrame(people=people):
                    if self._catchup is not None:
                        from fletchat.events import Presence

                        self._call(self._catchup.peer_presence, conn.peer.id,
                                   tuple(Presence(n, d, t) for n, d, t in people))
                case RefusedFrame(refused=pairs):
                    if self._catchup is not None:
                        self._call(self._catchup.refused, conn.peer.id, pairs)
                case AckFrame(ids=ids):
                    if self._catchup is not None:
                        self._call(self._catchup.acked, conn.peer.id, ids)
                case Ping():
                    self._enqueue(conn, encode_pong())
                case Pong():
                    pass
                case PeersFrame(peers=addresses):
                    conn.neighbours.update(a.peer_id for a in addresses)
                    self._learn(addresses, conn)
                case Bye(reason=reason):
                    conn.down_reason = f"left: {reason}" if reason else "left"
                    await self._close(conn, CLOSE_NORMAL, "bye")
                    return
                case Hello():
                    await self._close(conn, CLOSE_PROTOCOL_ERROR, "unexpected second hello")
                    return
                case Auth():
                    await self._close(conn, CLOSE_PROTOCOL_ERROR, "unexpected auth")
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
        tick = min(self._hb_interval, self._hb_timeout / 8)
        last_ping = last_have = loop.time()
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
            if self._catchup is not None and now - last_have >= self._anti_entropy:
                # Anti-entropy: repairs what a skipped relay or a lost frame left out, and
                # confirms delivery of what the other side now holds.
                last_have = now
                try:
                    self._enqueue(conn, encode_have(self._catchup.summary()))
                except Exception:
                    log.exception("catch-up summary failed")

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
        sig_for = self._sig_for if self._trust is not None else None
        for frame in encode_sync(history, sig_for=sig_for):
            self._enqueue(conn, frame)
        if self._catchup is not None:
            try:
                self._enqueue(conn, encode_have(self._catchup.summary()))
            except Exception:
                log.exception("catch-up summary failed")
            self._send_presence(conn)
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
            if self.is_blocked(a.peer_id):
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
        loop = asyncio.get_running_loop()
        pace = TokenBucket(conn.bucket.rate * 0.8, conn.bucket.burst / 2, clock=loop.time)
        while conn.peer is not None and not conn.done.is_set():
            try:
                batch = self._catchup.missing(
                    summary, after, MAX_SYNC_MESSAGES, peer=conn.peer.id)
            except Exception:
                log.exception("catch-up query failed")
                return
            sig_for = self._sig_for if self._trust is not None else None
            for frame in encode_sync(batch, limit=len(batch), sig_for=sig_for):
                while conn.queue.qsize() > SEND_QUEUE_FRAMES // 4:
                    await asyncio.sleep(0.02)
                # Stay under the receiver's flood limit (same constants as ours), with a margin
                # for its other frames: the burst goes at once, then the refill rate.
                while not pace.allow():
                    await asyncio.sleep(1 / pace.rate)
                self._enqueue(conn, frame)
            sent += len(batch)
            if len(batch) < MAX_SYNC_MESSAGES:
                break
            last = batch[-1]
            after = (last.origin, last.seq)
        if sent:
            log.info("caught up %s with %d messages", conn.describe(), sent)

    def _deliver(self, conn: _Conn, pairs: tuple[tuple[Message, str], ...], relay: bool) -> None:
        """Hand messages to the hub's acceptance pipeline (or the plain callback without a hub);
        acknowledge, once stored, the ones it stored."""
        assert conn.peer is not None
        stored: list[Message] = []
        refused: list[tuple[str, str]] = []
        for msg, sig in pairs:
            status = self._accept_message(msg, sig, conn)
            if status is None:
                continue
            if self._catchup is None:
                self._call(self._on_message, msg, conn.peer.id)
                continue
            try:
                acc = self._catchup.receive(
                    msg, conn.peer.id, verified=status == "verified", relay=relay)
            except Exception:
                log.exception("hub refused to take message %s", msg.id)
                continue
            if acc.stored:
                stored.append(msg)
            else:
                refused.append((msg.id, acc.reason[:MAX_REFUSAL_CHARS]))
        for i in range(0, len(refused), MAX_REFUSED_IDS):  # tell the sender why, never ack
            self._enqueue(conn, encode_frame(RefusedFrame(tuple(refused[i:i + MAX_REFUSED_IDS]))))
        if stored:
            asyncio.get_running_loop().create_task(self._ack(conn, stored))

    async def _ack(self, conn: _Conn, msgs: list[Message]) -> None:
        """Receipts to the origin for its own numbered messages (what makes "delivered" true),
        sent only once the hub has them stored: an ack means "stored"."""
        if self._catchup is None or conn.peer is None:
            return
        ids = [m.id for m in msgs if m.origin == conn.peer.id and m.seq > 0]
        if not ids:
            return
        try:
            await self._catchup.wait_stored(tuple(ids))
        except FletChatError as err:  # the store could not keep them: no receipt
            log.warning("not acknowledging %d messages from %s: %s", len(ids), conn.describe(), err)
            return
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
