"""The mesh's shared state and the plumbing of one link (a socket and its ``PeerConnection``).

``LinkCore`` holds what every part of the mesh shares (registry, dialer, open links, settings,
the app) and serves each link: the writer, heartbeats, receipts, catch-up and closing. What a
frame means is decided in ``peer.connection``; this module only moves frames and calls the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from fletchat.events import Acceptance, Presence
from fletchat.model import MAX_PRESENCE_PER_PEER, Message, Peer, new_id
from fletchat.peer.catchup import ANTI_ENTROPY_SECONDS, MAX_BACKLOG_FRAMES, Pacer
from fletchat.peer.connection import Limits, PeerConnection, State
from fletchat.peer.dialer import Dialer
from fletchat.peer.policy import TrustPolicy
from fletchat.peer.registry import Registry, SlotLimits
from fletchat.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TIMEOUT,
    REASON_DUPLICATE,
    RECONNECT_MAX,
    RECONNECT_MIN,
    PresenceEntry,
    encode_acks,
    encode_have,
    encode_ping,
    encode_presence,
    sync_frames,
)
from fletchat.stalls import LoopStalls
from fletchat.ws_write import writable, write_now

log = logging.getLogger("fletchat.mesh")

ERROR_CODES = {1002, 1003, 1007, 1008, 1009, 1011, 1013}
CATCHUP_QUERY = 1000  # messages read per catch-up query (sent in frames of MAX_SYNC_MESSAGES)
# Receipts wait this long for more before they go: one ``ack`` frame per window and link instead
# of one per store commit (an ack frame costs both ends a TLS/websockets hop).
ACK_GATHER_S = 0.1
STALLED_TIMEOUTS = 3  # after this many heartbeat timeouts of silence, drop even if we stalled


class MeshHost(Protocol):
    """What the mesh needs from the app (the hub implements it; see the contract in
    docs/protocol.md, "Acceptance")."""

    def receive(
        self, msg: Message, from_peer: str, *, verified: bool, relay: bool = True
    ) -> Acceptance: ...

    def receive_page(
        self, items: Sequence[tuple[Message, bool]], from_peer: str
    ) -> list[Acceptance]:
        """A catch-up page's (message, verified) pairs: for each, what ``receive(...,
        relay=False)`` called in turn would decide."""

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
        self, summary: dict[str, int], after: tuple[str, int] | None, limit: int, peer: str = ""
    ) -> list[Message]: ...

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None: ...

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None: ...

    def peer_signal(self, peer_id: str, frame: Any) -> None:
        """A ``typing`` or ``read`` frame from ``peer_id`` itself (never stored, never relayed)."""


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


def close_reason(reason: str) -> str:
    """Close reasons must fit in 123 UTF-8 bytes."""
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return reason
    return data[:120].decode("utf-8", "ignore") + "..."


@dataclass(eq=False)
class Link:
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
    catchup: asyncio.Task[None] | None = None  # answering the peer's summaries, one at a time
    wanted: dict[str, int] | None = None  # its newest summary not yet being answered
    pages: asyncio.Queue[Any] | None = None  # messages waiting to be judged, in order
    judging: asyncio.Task[None] | None = None  # the task judging them
    putting: int = 0  # reads waiting for room in ``pages``: its task waits for them too
    down_reason: str = ""
    writing: bool = False  # the write task is sending (``LinkCore.send`` then only queues)

    @property
    def peer(self) -> Peer | None:
        return self.conn.peer

    def describe(self) -> str:
        p = self.conn.peer
        who = f"{p.name} ({p.id[:12]})" if p else "unknown peer"
        if p is not None and p.fingerprint:
            who += f" [{p.fingerprint}]"
        return f"{who} at {self.conn.remote_ip}, {'outgoing' if self.conn.outgoing else 'incoming'}"


class LinkCore:
    """State shared by the mesh's parts, and the tasks that serve one link."""

    def __init__(
        self, me: Peer, app: MeshHost, settings: MeshSettings, trust: TrustPolicy
    ) -> None:
        self.me = me
        self.app = app
        self.settings = settings
        self.trust = trust
        self.port = 0
        self.session = new_id()  # tells a restarted copy of a peer from the running one
        self.links: set[Link] = set()
        self.registry: Registry[Link] = Registry()
        self.dialer = Dialer(
            me.id, settings.own_addresses, (settings.reconnect_min, settings.reconnect_max)
        )
        self.changed = asyncio.Event()
        self.stopping = False
        self.stalls = LoopStalls()  # this host's own loop stalls, counted while a handshake waits

    def sig_for(self, msg: Message) -> str:
        try:
            return self.trust.sig_for(msg)
        except Exception:
            log.exception("signature lookup failed for %s", msg.id)
            return ""

    def presence_frame(self) -> str:
        try:
            people = self.app.local_presence()[:MAX_PRESENCE_PER_PEER]
        except Exception:
            log.exception("local presence failed")
            people = ()
        return encode_presence(PresenceEntry(p.name, p.device, p.since) for p in people)

    def send(self, link: Link, frame: str) -> None:
        """Queue ``frame``; written at once when the link's write task is idle and websockets
        would write it straight away (``ws_write``), else by that task, in order."""
        conn = link.conn
        if not conn.send(frame) and conn.state is State.CLOSED:
            self.closing(link, conn.close_code or CLOSE_POLICY, conn.close_reason)
        elif not link.writing and conn.state is State.OPEN and writable(link.ws):
            write_now(link.ws, conn.data_to_send())
            return
        link.wake.set()

    def close(self, link: Link, code: int, reason: str) -> None:
        """Close ``link`` (no bye): the app hears that the peer is down now."""
        if link.conn.state is not State.CLOSED:
            link.conn.close_request(reason, code)
        link.down_reason = link.down_reason or reason
        self.closing(link, code, reason)
        link.wake.set()

    def closing(self, link: Link, code: int, reason: str) -> None:
        if code in ERROR_CODES:
            log.warning("closing connection with %s: %s (%d)", link.describe(), reason, code)
        self.unregister(link, link.down_reason or reason, grace=False)

    def unregister(self, link: Link, reason: str, *, grace: bool) -> None:
        peer = link.peer
        if peer is None:
            return
        until = time.monotonic() + self.settings.heartbeat_timeout if grace else None
        if self.registry.remove(link, peer.id, None if self.stopping else until):
            log.info("peer down: %s (%s)", link.describe(), reason)
            self.call(self.app.peer_down, peer, reason)
        elif until is not None and not self.stopping:
            asyncio.get_running_loop().call_later(
                self.settings.heartbeat_timeout, self.expire_down, reason
            )
        self.notify_changed()

    def expire_down(self, reason: str) -> None:
        for peer in self.registry.expire(time.monotonic()):
            log.info("peer down: %s (%s)", peer.id, reason)
            self.call(self.app.peer_down, peer, reason)

    def notify_changed(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def write_loop(self, link: Link) -> None:
        """Send what the connection queued, in order; close the socket once it is CLOSED."""
        conn = link.conn
        try:
            while True:
                await link.wake.wait()
                link.wake.clear()
                link.writing = True  # ``send`` queues behind these frames meanwhile
                try:
                    for frame in conn.data_to_send():
                        await link.ws.send(frame)
                finally:
                    link.writing = False
                if conn.state is State.CLOSED:
                    code = conn.close_code or CLOSE_GOING_AWAY
                    await link.ws.close(code, close_reason(conn.close_reason))
                    return
        except ConnectionClosed:
            return

    async def heartbeat(self, link: Link) -> None:
        """Ping every interval; drop the peer when nothing arrived for ``heartbeat_timeout``;
        send ``have`` every ``anti_entropy`` seconds (repairs what a skipped relay left out).

        A tick that comes late means this host's own loop did not run (a starved CPU, a long
        GC): the peer's frames may be waiting unread in the socket, so the verdict waits one
        more tick, up to ``STALLED_TIMEOUTS`` timeouts of silence (figure 14: loaded hosts
        dropped live peers after their own 5-6 s stalls and needed ~40 s to reconnect)."""
        s = self.settings
        tick = min(s.heartbeat_interval, s.heartbeat_timeout / 8)
        last_ping = last_have = time.monotonic()
        while link.conn.state is State.OPEN:
            asleep = time.monotonic()
            await asyncio.sleep(tick)
            now = time.monotonic()
            stalled = now - asleep > 2 * tick
            idle = link.conn.idle_for(time.time())
            if idle > s.heartbeat_timeout and (
                    not stalled or idle > STALLED_TIMEOUTS * s.heartbeat_timeout):
                log.info("no frame from %s for %.1f s: dropping it", link.describe(),
                         link.conn.idle_for(time.time()))
                link.down_reason = "heartbeat timeout"
                self.close(link, CLOSE_TIMEOUT, "heartbeat timeout")
                return
            if now - last_ping >= s.heartbeat_interval:
                last_ping = now
                self.send(link, encode_ping())
            if now - last_have >= s.anti_entropy:
                last_have = now
                self.send(link, encode_have(await self.ask_off_loop(self.app.summary, {})))

    async def ack_loop(self, link: Link) -> None:
        """Receipts to the writer, once what they name is durable (an ack means "stored")."""
        while True:
            ids = await link.acks.get()
            await asyncio.sleep(ACK_GATHER_S)
            while not link.acks.empty() and len(ids) < 1024:
                ids += link.acks.get_nowait()
            try:
                await self.app.wait_stored(ids)
            except Exception:
                log.exception("waiting for %d messages to be stored failed", len(ids))
                continue
            for frame in encode_acks(list(ids)):
                self.send(link, frame)

    async def catch_up(self, link: Link) -> None:
        """Answer the peer's ``have`` summaries (``link.wanted``) one at a time, the newest
        taking over from the one being answered at its next batch: a flood of ``have`` frames
        once started a catch-up each, and the cancelled ones' store reads ran on regardless,
        holding the store's lock back to back."""
        while link.wanted is not None:
            summary, link.wanted = link.wanted, None
            await self.send_missing(link, summary, superseded=lambda: link.wanted is not None)

    async def send_missing(self, link: Link, summary: dict[str, int],
                           superseded: Callable[[], bool] = lambda: False) -> None:
        """Answer a ``have``: what the peer lacks, in bounded batches, paced under its limits.
        Each batch is read, given its signatures (one query) and encoded on a worker thread;
        a ``superseded`` answer stops before its next batch."""
        after: tuple[str, int] | None = None
        sent = 0
        pace = Pacer()
        # What was sent above a gap is not sent again on this connection (the hub remembers it
        # per connection: frames queued on a connection that died may never have arrived).
        sent_on = f"{link.peer.id}/{link.conn.nonce}" if link.peer is not None else ""
        while link.conn.state is State.OPEN:
            answer = await self.ask_off_loop(  # SQLite reads: never on the event loop
                lambda after=after: self._missing_frames(summary, after, sent_on), None)
            if answer is None:
                return
            frames, count, last = answer
            for frame, n in frames:
                while link.conn.backlog() > MAX_BACKLOG_FRAMES:
                    await asyncio.sleep(0.02)
                while (wait := pace.wait(n, time.monotonic())) > 0:
                    await asyncio.sleep(wait)
                pace.spend(n, time.monotonic())
                self.send(link, frame)
            sent += count
            if count < CATCHUP_QUERY or last is None or superseded():
                break
            after = last
        if sent:
            log.info("caught up %s with %d messages", link.describe(), sent)

    def _missing_frames(self, summary: dict[str, int], after: tuple[str, int] | None,
                        sent_on: str) -> tuple[list[tuple[str, int]], int, tuple[str, int] | None]:
        """(sync frames, messages in them, where the next query starts): on a worker thread."""
        batch = self.app.missing(summary, after, CATCHUP_QUERY, peer=sent_on)
        sigs = dict(zip((m.id for m in batch), self.trust.sigs_for(batch), strict=True))
        frames = sync_frames(batch, sig_for=lambda m: sigs.get(m.id, ""))
        return frames, len(batch), ((batch[-1].origin, batch[-1].seq) if batch else None)

    async def finish(self, link: Link) -> None:
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
        for task in (*link.tasks, link.catchup):
            if task is not None:
                task.cancel()
        self.links.discard(link)
        duplicate = ws.close_reason == REASON_DUPLICATE and ws.close_code == CLOSE_NORMAL
        reason = link.down_reason or self.closed_reason(ws)
        self.unregister(link, reason, grace=duplicate and closed_by_peer)
        link.done.set()

    def log_closed(self, link: Link, closed: ConnectionClosed) -> None:
        sent = closed.sent
        if sent is not None and sent.code in ERROR_CODES and closed.rcvd_then_sent is not True:
            # websockets closed it for us, e.g. a frame over max_size (1009)
            log.warning("closed connection with %s: %s (%d)", link.describe(), sent.reason,
                        sent.code)
            link.down_reason = link.down_reason or sent.reason
        else:
            log.debug("connection with %s closed: %s", link.describe(), closed)

    def closed_reason(self, ws: Connection) -> str:
        code, reason = ws.close_code, ws.close_reason
        if code is None:
            return "connection lost"
        return f"closed ({code}{': ' + reason if reason else ''})"

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """App callbacks must not break the mesh: log what they raise and carry on."""
        try:
            callback(*args)
        except Exception:
            log.exception("mesh callback %s failed", getattr(callback, "__name__", callback))

    async def ask_off_loop(self, question: Callable[[], Any], default: Any) -> Any:
        """``ask`` on a worker thread: for questions that read the store."""
        return await asyncio.to_thread(self.ask, question, default)

    def ask(self, question: Callable[[], Any], default: Any) -> Any:
        try:
            return question()
        except Exception:
            log.exception("mesh query %s failed", getattr(question, "__name__", question))
            return default
