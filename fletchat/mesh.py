"""The WebSocket mesh: sockets, tasks and queues around the pure peer core.

Every decision lives in a small pure module that unit tests drive without sockets:
``peer.connection`` (one connection's handshake, limits and verdicts), ``peer.registry`` (one
connection per peer, the announce rule, slot admission), ``peer.dialer`` (whom to dial, backoff,
which adverts to believe) and ``peer.catchup`` (pacing). This module only moves frames between
them, the sockets and the app (``MeshHost``, the hub). See ``docs/protocol.md``.

All callbacks run on the event loop thread. ``broadcast``, ``add_peer_address``,
``forget_peer_address`` and ``presence_changed`` may be called from any thread (Flet runs sync
handlers in a thread pool, zeroconf has its own threads): off the loop they are handed to it.
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
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException

from fletchat.events import Acceptance, Presence
from fletchat.model import MAX_FRAME_BYTES, MAX_PRESENCE_PER_PEER, Message, Peer, new_id
from fletchat.peer.catchup import ANTI_ENTROPY_SECONDS, MAX_BACKLOG_FRAMES, Pacer
from fletchat.peer.connection import (
    CLOSE_TRY_AGAIN,
    REASON_BLOCKED,
    Acked,
    Closed,
    Event,
    Gossip,
    Have,
    IdentityChanged,
    Limits,
    Local,
    Messages,
    Opened,
    PeerConnection,
    PresenceReport,
    RefusedByPeer,
    State,
    TlsFacts,
)
from fletchat.peer.dialer import Dialer, Outcome, Source, Wanted
from fletchat.peer.policy import NoTrust, TrustPolicy
from fletchat.peer.registry import Admit, Registry, Slot, SlotLimits, admit_peer, admit_socket
from fletchat.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TIMEOUT,
    MAX_SYNC_MESSAGES,
    NONCE_BYTES,
    REASON_DUPLICATE,
    REASON_SELF,
    RECONNECT_MAX,
    RECONNECT_MIN,
    PeerAddress,
    PresenceEntry,
    encode_acks,
    encode_have,
    encode_msg,
    encode_peers,
    encode_ping,
    encode_presence,
    encode_refused,
    encode_sync,
    gossip_host,
    sync_frames,
)

log = logging.getLogger("fletchat.mesh")
_ws_log = logging.getLogger("fletchat.mesh.websockets")  # the library's own chatter, one level down

_ERROR_CODES = {1002, 1003, 1007, 1008, 1009, 1011, 1013}


class MeshHost(Protocol):
    """What the mesh needs from the app (the hub implements it; see the contract in
    docs/protocol.md, "Acceptance")."""

    def receive(
        self, msg: Message, from_peer: str, *, verified: bool, relay: bool = True
    ) -> Acceptance: ...

    async def wait_stored(self, ids: tuple[str, ...]) -> None: ...

    def refused(self, peer_id: str, refusals: tuple[tuple[str, str], ...]) -> None: ...

    def local_presence(self) -> tuple[Presence, ...]: ...

    def peer_presence(self, peer_id: str, people: tuple[Presence, ...]) -> None: ...

    def peer_up(self, peer: Peer) -> None: ...

    def peer_down(self, peer: Peer, reason: str = "") -> None: ...

    def identity_warning(self, peer_id: str, name: str, old_fp: str, new_fp: str) -> None: ...

    def sync_batch(self) -> list[Message]: ...

    def summary(self) -> dict[str, int]: ...

    def missing(
        self, summary: dict[str, int], after: tuple[str, int] | None, limit: int
    ) -> list[Message]: ...

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None: ...

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None: ...


@dataclass(frozen=True)
class MeshSettings:
    """Everything that tunes a mesh (tests shorten the times)."""

    host: str = "0.0.0.0"
    port: int = 0
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 6.0
    handshake_timeout: float = 4.0  # hello + auth must be done by then
    reconnect_min: float = RECONNECT_MIN
    reconnect_max: float = RECONNECT_MAX
    anti_entropy: float = ANTI_ENTROPY_SECONDS
    limits: Limits = field(default_factory=Limits)
    slots: SlotLimits = field(default_factory=SlotLimits)
    own_addresses: frozenset[str] = frozenset()  # mDNS adverts for these are never dialed
    shutdown_timeout: float = 1.5  # stop() says bye and closes everything within this


def _close_reason(reason: str) -> str:
    """Close reasons must fit in 123 UTF-8 bytes."""
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return reason
    return data[:120].decode("utf-8", "ignore") + "..."


def _check_address(host: object, port: object) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError("peer host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid peer port {port!r}")


@dataclass(eq=False)
class _Link:
    """One socket and its protocol state, with the tasks that serve it."""

    ws: Connection
    conn: PeerConnection
    opened: float
    last_message: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    acks: asyncio.Queue[tuple[str, ...]] = field(default_factory=asyncio.Queue)
    neighbours: set[str] = field(default_factory=set)  # peers it is connected to (gossip)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    catchup: asyncio.Task[None] | None = None
    down_reason: str = ""

    @property
    def peer(self) -> Peer | None:
        return self.conn.peer

    def describe(self) -> str:
        p = self.conn.peer
        who = f"{p.name} ({p.id[:12]})" if p else "unknown peer"
        if p is not None and p.fingerprint:
            who += f" [{p.fingerprint}]"
        return f"{who} at {self.conn.remote_ip}, {'outgoing' if self.conn.outgoing else 'incoming'}"


class Mesh:
    """WebSocket server + client connections to every known peer. See the module docstring."""

    def __init__(
        self,
        me: Peer,
        host: MeshHost,
        settings: MeshSettings = MeshSettings(),
        trust: TrustPolicy | None = None,
    ) -> None:
        self.me = me
        self.app = host
        self.settings = settings
        self.trust: TrustPolicy = trust if trust is not None else NoTrust()
        self.port = 0
        self._session = new_id()  # tells a restarted copy of a peer from the running one
        self._dials = 0
        self._server: Server | None = None
        self._links: set[_Link] = set()
        self._registry: Registry[_Link] = Registry()
        self._dialer = Dialer(
            me.id, settings.own_addresses, (settings.reconnect_min, settings.reconnect_max)
        )
        self._dial_tasks: dict[tuple[str, int], tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._changed = asyncio.Event()
        self._warned: set[tuple[str, str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopping = False

    # ---- public API ----

    async def start(self) -> int:
        """Listen for peers; return the actual port (``port=0`` picks a free one)."""
        s = self.settings
        try:
            self._server = await serve(
                self._accept, s.host, s.port,
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
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._started = True
        for want in list(self._dialer.wanted.values()):
            self._spawn_dialer(want)
        log.info("mesh listening on %s:%s as %s", s.host, self.port, self.me.id)
        return self.port

    async def stop(self) -> None:
        """Say bye to every peer, close every connection and the server, stop reconnecting;
        all within ``shutdown_timeout`` (+ the server's own close), however busy the peers are."""
        if self._stopping:
            return
        self._stopping = True
        links = list(self._links)
        for link in links:
            link.conn.close_request("shutting down")
            link.down_reason = link.down_reason or "this peer stopped"
            link.wake.set()
        if links:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(link.done.wait()) for link in links],
                timeout=self.settings.shutdown_timeout,
            )
            for waiter in late:
                waiter.cancel()
        for link in links:
            if not link.done.is_set():
                transport = getattr(link.ws, "transport", None)
                if transport is not None:
                    transport.abort()
        for peer in self._registry.drain_pending():
            self._call(self.app.peer_down, peer, "this peer stopped")
        if self._server is not None:
            self._server.close(close_connections=False)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 0.5)
        tasks = [t for t, _ in self._dial_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dial_tasks.clear()
        self._dialer.wanted.clear()

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
        self._on_loop(self._drop_wanted, lambda: self._dialer.forget(peer_id))

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

    def presence_changed(self) -> None:
        """The people in our local sessions changed: tell every connected peer."""
        self._on_loop(self._send_presence_all)

    def peers(self) -> list[Peer]:
        """Connected, handshaken peers, at the address they listen on."""
        return self._registry.peers()

    def open_connections(self) -> int:
        """Open WebSockets, handshaken or not (diagnostics and tests)."""
        return len(self._links)

    # ---- on the loop ----

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
        self._drop_wanted(lambda: self._dialer.forget_all(peer_id))
        for link in [lk for lk in self._links if lk.peer is not None and lk.peer.id == peer_id]:
            log.warning("blocked peer %s: closing its connection", link.describe())
            self._close(link, CLOSE_POLICY, REASON_BLOCKED)

    def _broadcast(self, msg: Message, exclude: str | None) -> None:
        """A relay (``exclude`` set) also skips neighbours that told us they are connected to
        the origin: in a full mesh they have it from the author; ``have`` repairs any gap."""
        if not len(self._registry):
            return
        frame = encode_msg(msg, self._sig_for(msg))
        for peer_id, link in self._registry.items():
            if peer_id in (exclude, msg.origin):
                continue
            if exclude is not None and msg.origin in link.neighbours:
                continue
            self._send(link, frame)

    def _sig_for(self, msg: Message) -> str:
        try:
            return self.trust.sig_for(msg)
        except Exception:
            log.exception("signature lookup failed for %s", msg.id)
            return ""

    def _send_presence_all(self) -> None:
        frame = self._presence_frame()
        for link in self._registry.handles():
            self._send(link, frame)

    def _presence_frame(self) -> str:
        try:
            people = self.app.local_presence()[:MAX_PRESENCE_PER_PEER]
        except Exception:
            log.exception("local presence failed")
            people = ()
        return encode_presence(PresenceEntry(p.name, p.device, p.since) for p in people)

    # ---- dialing ----

    def _want(self, host: str, port: int, peer_id: str | None, source: Source) -> None:
        if self._stopping or (peer_id is not None and self.trust.is_blocked(peer_id)):
            return
        result = self._dialer.want(host, port, peer_id, source)
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
                   and lk.peer.id == want.peer_id for lk in self._links)

    def _spawn_dialer(self, want: Wanted) -> None:
        current = self._dial_tasks.get(want.addr)
        if current is None or current[0].done():
            task = asyncio.get_running_loop().create_task(
                self._dial_loop(want), name=f"fletchat-dial-{want.host}:{want.port}"
            )
            self._dial_tasks[want.addr] = (task, asyncio.Event())

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _dial_loop(self, want: Wanted) -> None:
        try:
            while not self._stopping and self._dialer.is_wanted(want):
                if want.peer_id is not None and want.peer_id in self._registry:
                    await self._changed.wait()
                    continue
                outcome = await self._dial_once(want)
                delay = self._dialer.after(want, outcome, random.random())
                if delay is None:
                    log.info("stopped dialing %s:%s (%s)", want.host, want.port, outcome)
                    return
                kick = self._dial_tasks[want.addr][1]
                kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(kick.wait(), delay)
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
                ping_interval=None, open_timeout=self.settings.handshake_timeout,
                close_timeout=min(2.0, self.settings.heartbeat_timeout), logger=_ws_log,
            ) as ws:
                return await self._run(ws, outgoing=True, dial=dial, want=want)
        except (OSError, TimeoutError, WebSocketException, ssl.SSLError) as err:
            log.debug("dialing %s failed: %s", uri, err or type(err).__name__)
            return Outcome.FAILED

    # ---- one connection ----

    async def _accept(self, ws: ServerConnection) -> None:
        if self._stopping:
            return
        remote = ws.remote_address
        address = str(remote[0]) if remote else "?"
        verdict = admit_socket(self._slots(), address, self.settings.slots)
        if not isinstance(verdict, Admit):
            log.warning("refusing a connection from %s: %s", address, verdict.reason)
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_TRY_AGAIN, _close_reason(verdict.reason))
            return
        if isinstance(verdict.evict, _Link):
            log.warning("closing %s to make room for a newcomer", verdict.evict.describe())
            self._close(verdict.evict, CLOSE_TRY_AGAIN, "making room for a newcomer")
        await self._run(ws, outgoing=False, dial=0, want=None)

    def _slots(self) -> list[Slot[_Link]]:
        return [
            Slot(lk, lk.conn.remote_ip, lk.opened, lk.conn.state is State.OPEN, lk.last_message)
            for lk in self._links
        ]

    def _tls_facts(self, ws: Connection, outgoing: bool) -> TlsFacts:
        if not self.trust.secured:
            return TlsFacts()
        if not outgoing:
            return TlsFacts(self.trust.cert_sha256)
        from fletchat.identity import cert_public_key

        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return TlsFacts()
        return TlsFacts(hashlib.sha256(der).hexdigest(), cert_public_key(der))

    async def _run(
        self, ws: Connection, *, outgoing: bool, dial: int, want: Wanted | None
    ) -> Outcome:
        """Handshake, register, read until closed; return how it went."""
        if self._stopping:
            return Outcome.FAILED
        remote = ws.remote_address
        now = time.time()
        conn = PeerConnection(
            Local(self.me, self.port, self._session, dial), outgoing,
            str(remote[0]) if remote else "?", self.trust, secrets.token_hex(NONCE_BYTES), now,
            self._tls_facts(ws, outgoing), self.settings.limits,
        )
        link = _Link(ws, conn, now, now)
        self._links.add(link)
        link.tasks.append(asyncio.get_running_loop().create_task(self._write_loop(link)))
        link.wake.set()
        outcome = Outcome.FAILED
        try:
            outcome = await self._handshake(link, want)
            if outcome is Outcome.UP:
                await self._read_loop(link)
        except ConnectionClosed as closed:
            self._log_closed(link, closed)
        except Exception:
            log.exception("mesh connection with %s failed", link.describe())
            self._close(link, CLOSE_TIMEOUT, "internal error")
        finally:
            await self._finish(link)
        return outcome

    async def _handshake(self, link: _Link, want: Wanted | None) -> Outcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.handshake_timeout
        conn = link.conn
        while conn.state in (State.AWAIT_HELLO, State.AWAIT_AUTH):
            try:
                raw = await asyncio.wait_for(link.ws.recv(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                self._close(link, CLOSE_TIMEOUT, "handshake not done in time")
                return Outcome.FAILED
            for event in conn.receive_text(raw, time.time()):
                if isinstance(event, Opened):
                    return self._opened(link, event, want)
                await self._handle(link, event)
            link.wake.set()
        return self._closed_outcome(conn)

    def _closed_outcome(self, conn: PeerConnection) -> Outcome:
        if conn.close_reason == REASON_SELF:
            return Outcome.SELF
        if conn.close_reason == REASON_BLOCKED:
            return Outcome.BLOCKED
        return Outcome.FAILED

    def _opened(self, link: _Link, event: Opened, want: Wanted | None) -> Outcome:
        peer = event.peer
        known = self._registry.known(peer.id)
        peers = [s for s in self._slots() if s.authenticated and s.handle is not link
                 and s.handle.peer is not None and self._registry.is_current(s.handle, s.handle.peer.id)]
        verdict = admit_peer(peers, link.conn.remote_ip, self.settings.slots, known)
        if not isinstance(verdict, Admit):
            self._close(link, CLOSE_TRY_AGAIN, verdict.reason)
            return Outcome.FAILED
        if isinstance(verdict.evict, _Link):
            log.warning("dropping idle %s to make room for %s", verdict.evict.describe(),
                        link.describe())
            self._close(verdict.evict, CLOSE_TRY_AGAIN, "making room for a newcomer")
        if want is not None and want.peer_id != peer.id:
            want.peer_id = peer.id
        offer = self._registry.offer(link, peer, event.key)
        if not offer.accepted:
            log.info("keeping the existing connection with %s", peer.id)
            self._close(link, CLOSE_NORMAL, REASON_DUPLICATE)
            return Outcome.DUPLICATE
        if offer.replaced is not None:
            log.info("connection with %s replaces an older one", link.describe())
            self._close(offer.replaced, CLOSE_NORMAL, REASON_DUPLICATE)
        if offer.announce:
            log.info("peer up: %s", link.describe())
            self._call(self.app.peer_up, peer)
        self._welcome(link)
        if offer.announce and peer.port:
            news = encode_peers([PeerAddress(peer.id, peer.host, peer.port)])
            for other_id, other in self._registry.items():
                if other_id != peer.id:
                    self._send(other, news)
        self._notify_changed()
        return Outcome.UP

    def _welcome(self, link: _Link) -> None:
        """Right after the handshake: recent history (sync), our catch-up summary (have), the
        peers we know (gossip) and who is here (presence)."""
        history = self._ask(self.app.sync_batch, [])
        for frame in encode_sync(history, sig_for=self._sig_for):
            self._send(link, frame)
        self._send(link, encode_have(self._ask(self.app.summary, {})))
        known = [
            PeerAddress(p.id, p.host, p.port) for p in self._registry.peers()
            if link.peer is not None and p.id != link.peer.id and p.port
        ]
        if known:
            self._send(link, encode_peers(known))
        self._send(link, self._presence_frame())
        loop = asyncio.get_running_loop()
        link.tasks.append(loop.create_task(self._heartbeat(link)))
        link.tasks.append(loop.create_task(self._ack_loop(link)))

    async def _read_loop(self, link: _Link) -> None:
        conn = link.conn
        while conn.state is State.OPEN:
            raw = await link.ws.recv()
            for event in conn.receive_text(raw, time.time()):
                await self._handle(link, event)
            link.wake.set()

    async def _handle(self, link: _Link, event: Event) -> None:
        peer = link.peer
        peer_id = peer.id if peer is not None else ""
        match event:
            case Messages():
                self._on_messages(link, event)
            case Have(summary=summary):
                self._call(self.app.peer_has, peer_id, summary)
                if link.catchup is not None:
                    link.catchup.cancel()
                link.catchup = asyncio.get_running_loop().create_task(
                    self._send_missing(link, summary)
                )
                link.tasks.append(link.catchup)
            case Acked(ids=ids):
                self._call(self.app.acked, peer_id, ids)
            case RefusedByPeer(refusals=refusals):
                log.warning("%s refused %d of our messages (%s)", link.describe(),
                            len(refusals), refusals[0][1] if refusals else "")
                self._call(self.app.refused, peer_id, refusals)
            case PresenceReport(people=people):
                self._call(self.app.peer_presence, peer_id,
                           tuple(Presence(p.name, p.device, p.since) for p in people))
            case Gossip(addresses=addresses):
                link.neighbours.update(a.peer_id for a in addresses)
                self._learn(addresses, link)
            case IdentityChanged():
                self._identity_changed(event)
            case Closed(code=code, reason=reason, down_reason=down):
                link.down_reason = link.down_reason or down
                self._closing(link, code, reason)

    def _on_messages(self, link: _Link, event: Messages) -> None:
        """The one path for every message from a peer: the hub decides; acks mean stored."""
        peer = link.peer
        assert peer is not None
        refused = list(event.refused)
        stored: list[str] = []
        for item in event.items:
            try:
                acc = self.app.receive(item.message, peer.id, verified=item.verified,
                                       relay=event.live)
            except Exception:
                log.exception("receiving %s failed", item.message.id)
                continue
            if acc.stored:
                if item.message.origin == peer.id:
                    stored.append(item.message.id)
            else:
                refused.append((item.message.id, acc.reason or "refused"))
        if event.items:
            link.last_message = time.time()
        if refused:
            for frame in encode_refused(refused):
                self._send(link, frame)
        if stored:
            link.acks.put_nowait(tuple(stored))

    async def _ack_loop(self, link: _Link) -> None:
        """Receipts to the writer, once what they name is durable (an ack means "stored")."""
        while True:
            ids = await link.acks.get()
            while not link.acks.empty() and len(ids) < 1024:
                ids += link.acks.get_nowait()
            try:
                await self.app.wait_stored(ids)
            except Exception:
                log.exception("waiting for %d messages to be stored failed", len(ids))
                continue
            for frame in encode_acks(list(ids)):
                self._send(link, frame)

    def _learn(self, addresses: tuple[PeerAddress, ...], via: _Link) -> None:
        """Gossip: dial peers we neither know nor already try to reach."""
        wanted = self._dialer.wanted_ids()
        for a in addresses:
            if a.peer_id == self.me.id or a.peer_id in self._registry or a.peer_id in wanted:
                continue
            if self.trust.is_blocked(a.peer_id):
                continue
            host = gossip_host(a.host, via.conn.remote_ip)
            log.info("learned peer %s at %s:%s from %s", a.peer_id, host, a.port, via.describe())
            self._want(host, a.port, a.peer_id, Source.GOSSIP)
            wanted.add(a.peer_id)

    def _identity_changed(self, event: IdentityChanged) -> None:
        """A known peer id came with another key: refused; say so loudly (once per key)."""
        first = (event.peer_id, event.new_fingerprint) not in self._warned
        self._warned.add((event.peer_id, event.new_fingerprint))
        (log.error if first else log.info)(
            "IDENTITY WARNING: peer id %s (calling itself %r) presented key %s, but we know it "
            "as %s. Refused: this may be someone impersonating it. If its owner reinstalled, "
            "compare fingerprints with them and reset it (--forget-peer %s).",
            event.peer_id, event.name, event.new_fingerprint, event.old_fingerprint,
            event.peer_id,
        )
        if first:
            self._call(self.app.identity_warning, event.peer_id, event.name,
                       event.old_fingerprint, event.new_fingerprint)

    async def _send_missing(self, link: _Link, summary: dict[str, int]) -> None:
        """Answer a ``have``: what the peer lacks, in bounded batches, paced under its limits."""
        after: tuple[str, int] | None = None
        sent = 0
        pace = Pacer()
        while link.conn.state is State.OPEN:
            batch = self._ask(
                lambda after=after: self.app.missing(summary, after, MAX_SYNC_MESSAGES), None
            )
            if batch is None:
                return
            for frame, count in sync_frames(batch, sig_for=self._sig_for):
                while link.conn.backlog() > MAX_BACKLOG_FRAMES:
                    await asyncio.sleep(0.02)
                while (wait := pace.wait(count, time.monotonic())) > 0:
                    await asyncio.sleep(wait)
                pace.spend(count, time.monotonic())
                self._send(link, frame)
            sent += len(batch)
            if len(batch) < MAX_SYNC_MESSAGES:
                break
            after = (batch[-1].origin, batch[-1].seq)
        if sent:
            log.info("caught up %s with %d messages", link.describe(), sent)

    async def _heartbeat(self, link: _Link) -> None:
        """Ping every interval; drop the peer when nothing arrived for ``heartbeat_timeout``;
        send ``have`` every ``anti_entropy`` seconds (repairs what a skipped relay left out)."""
        s = self.settings
        tick = min(s.heartbeat_interval, s.heartbeat_timeout / 8)
        last_ping = last_have = time.monotonic()
        while link.conn.state is State.OPEN:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if link.conn.idle_for(time.time()) > s.heartbeat_timeout:
                log.info("no frame from %s for %.1f s: dropping it", link.describe(),
                         link.conn.idle_for(time.time()))
                link.down_reason = "heartbeat timeout"
                self._close(link, CLOSE_TIMEOUT, "heartbeat timeout")
                return
            if now - last_ping >= s.heartbeat_interval:
                last_ping = now
                self._send(link, encode_ping())
            if now - last_have >= s.anti_entropy:
                last_have = now
                self._send(link, encode_have(self._ask(self.app.summary, {})))

    async def _write_loop(self, link: _Link) -> None:
        """Send what the connection queued, in order; close the socket once it is CLOSED."""
        conn = link.conn
        try:
            while True:
                await link.wake.wait()
                link.wake.clear()
                for frame in conn.data_to_send():
                    await link.ws.send(frame)
                if conn.state is State.CLOSED:
                    code = conn.close_code or CLOSE_GOING_AWAY
                    await link.ws.close(code, _close_reason(conn.close_reason))
                    return
        except ConnectionClosed:
            return

    # ---- closing ----

    def _send(self, link: _Link, frame: str) -> None:
        if not link.conn.send(frame) and link.conn.state is State.CLOSED:
            self._closing(link, link.conn.close_code or CLOSE_POLICY, link.conn.close_reason)
        link.wake.set()

    def _close(self, link: _Link, code: int, reason: str) -> None:
        """Close ``link`` (no bye): the app hears that the peer is down now."""
        if link.conn.state is not State.CLOSED:
            link.conn.close_request(reason, code)
        link.down_reason = link.down_reason or reason
        self._closing(link, code, reason)
        link.wake.set()

    def _closing(self, link: _Link, code: int, reason: str) -> None:
        if code in _ERROR_CODES:
            log.warning("closing connection with %s: %s (%d)", link.describe(), reason, code)
        self._unregister(link, link.down_reason or reason, grace=False)

    def _unregister(self, link: _Link, reason: str, *, grace: bool) -> None:
        peer = link.peer
        if peer is None:
            return
        until = time.monotonic() + self.settings.heartbeat_timeout if grace else None
        if self._registry.remove(link, peer.id, None if self._stopping else until):
            log.info("peer down: %s (%s)", link.describe(), reason)
            self._call(self.app.peer_down, peer, reason)
        elif until is not None and not self._stopping:
            asyncio.get_running_loop().call_later(
                self.settings.heartbeat_timeout, self._expire_down, reason
            )
        self._notify_changed()

    def _expire_down(self, reason: str) -> None:
        for peer in self._registry.expire(time.monotonic()):
            log.info("peer down: %s (%s)", peer.id, reason)
            self._call(self.app.peer_down, peer, reason)

    async def _finish(self, link: _Link) -> None:
        """The socket is done: stop its tasks; the peer is down (after a grace if the other side
        closed it as a duplicate: the connection it keeps is on its way)."""
        ws = link.ws
        closed_by_peer = link.conn.close_code is None
        if closed_by_peer:
            link.conn.close_request("connection lost", CLOSE_GOING_AWAY)
        link.wake.set()
        writer = link.tasks[0]
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(writer), 1.0)
        for task in link.tasks:
            task.cancel()
        self._links.discard(link)
        duplicate = ws.close_reason == REASON_DUPLICATE and ws.close_code == CLOSE_NORMAL
        reason = link.down_reason or self._closed_reason(ws)
        self._unregister(link, reason, grace=duplicate and closed_by_peer)
        link.done.set()

    def _log_closed(self, link: _Link, closed: ConnectionClosed) -> None:
        sent = closed.sent
        if sent is not None and sent.code in _ERROR_CODES and closed.rcvd_then_sent is not True:
            # websockets closed it for us, e.g. a frame over max_size (1009)
            log.warning("closed connection with %s: %s (%d)", link.describe(), sent.reason,
                        sent.code)
            link.down_reason = link.down_reason or sent.reason
        else:
            log.debug("connection with %s closed: %s", link.describe(), closed)

    def _closed_reason(self, ws: Connection) -> str:
        code, reason = ws.close_code, ws.close_reason
        if code is None:
            return "connection lost"
        return f"closed ({code}{': ' + reason if reason else ''})"

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        """App callbacks must not break the mesh: log what they raise and carry on."""
        try:
            callback(*args)
        except Exception:
            log.exception("mesh callback %s failed", getattr(callback, "__name__", callback))

    def _ask(self, question: Callable[[], Any], default: Any) -> Any:
        try:
            return question()
        except Exception:
            log.exception("mesh query %s failed", getattr(question, "__name__", question))
            return default
