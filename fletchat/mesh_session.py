"""One connection's life in the mesh: admission, handshake, registration, then every event.

``Sessions`` drives a ``PeerConnection`` with what a socket receives and acts on its events: it
asks the slot policy and the registry (``peer.registry``), hands messages to the app (acks only
what is stored, refusals said to the sender) and feeds gossip to the dialer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from fletchat.aio import within
from fletchat.events import Presence
from fletchat.mesh_judge import MessageJudge
from fletchat.mesh_link import STALLED_TIMEOUTS, Link, LinkCore, close_reason
from fletchat.peer.connection import (
    CLOSE_TRY_AGAIN,
    REASON_BLOCKED,
    Acked,
    Closed,
    Event,
    Gossip,
    Have,
    IdentityChanged,
    Live,
    Local,
    Messages,
    Opened,
    PeerConnection,
    PresenceReport,
    RefusedByPeer,
    State,
    TlsFacts,
)
from fletchat.peer.dialer import Outcome, Source, Wanted
from fletchat.peer.registry import Admit, Slot, admit_peer, admit_socket
from fletchat.protocol import (
    CLOSE_NORMAL,
    CLOSE_TIMEOUT,
    NONCE_BYTES,
    REASON_DUPLICATE,
    REASON_SELF,
    PeerAddress,
    encode_have,
    encode_peers,
    encode_sync,
    gossip_host,
)

log = logging.getLogger("fletchat.mesh")
JUDGING_GRACE_S = 10.0  # a closed link's pages already read are still judged, for this long


class Sessions:
    """Serves every socket, accepted or dialed, from its first frame to its close."""

    def __init__(
        self, core: LinkCore, want: Callable[[str, int, str | None, Source], None]
    ) -> None:
        self.core = core
        self.want = want  # the dialer's door, for gossip
        self._warned: set[tuple[str, str]] = set()
        self.judge = MessageJudge(core)

    async def accept(self, ws: ServerConnection) -> None:
        if self.core.stopping:
            return
        remote = ws.remote_address
        address = str(remote[0]) if remote else "?"
        verdict = admit_socket(self._slots(), address, self.core.settings.slots)
        if not isinstance(verdict, Admit):
            log.warning("refusing a connection from %s: %s", address, verdict.reason)
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_TRY_AGAIN, close_reason(verdict.reason))
            return
        if isinstance(verdict.evict, Link):
            log.warning("closing %s to make room for a newcomer", verdict.evict.describe())
            self.core.close(verdict.evict, CLOSE_TRY_AGAIN, "making room for a newcomer")
        await self.run(ws, outgoing=False, dial=0, want=None)

    def _slots(self) -> list[Slot[Link]]:
        """Our own dials count as settled: only strangers' unfinished handshakes make room."""
        return [
            Slot(lk, lk.conn.remote_ip, lk.opened,
                 lk.conn.state is State.OPEN or lk.conn.outgoing, lk.last_message)
            for lk in self.core.links
        ]

    def _tls_facts(self, ws: Connection, outgoing: bool) -> TlsFacts:
        if not self.core.trust.secured:
            return TlsFacts()
        if not outgoing:
            return TlsFacts(self.core.trust.cert_sha256)
        from fletchat.identity import cert_public_key

        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return TlsFacts()
        return TlsFacts(hashlib.sha256(der).hexdigest(), cert_public_key(der))

    async def run(
        self, ws: Connection, *, outgoing: bool, dial: int, want: Wanted | None
    ) -> Outcome:
        """Handshake, register, read until closed; return how it went."""
        if self.core.stopping:
            return Outcome.FAILED
        remote = ws.remote_address
        now = time.time()
        conn = PeerConnection(
            Local(self.core.me, self.core.port, self.core.session, dial), outgoing,
            str(remote[0]) if remote else "?", self.core.trust, secrets.token_hex(NONCE_BYTES), now,
            self._tls_facts(ws, outgoing), self.core.settings.limits,
        )
        link = Link(ws, conn, now, now)
        self.core.links.add(link)
        link.tasks.append(asyncio.get_running_loop().create_task(self.core.write_loop(link)))
        link.wake.set()
        outcome = Outcome.FAILED
        try:
            outcome = await self._handshake(link, want)
            if outcome is Outcome.UP:
                await self._read_loop(link)
        except ConnectionClosed as closed:
            self.core.log_closed(link, closed)
        except Exception:
            log.exception("mesh connection with %s failed", link.describe())
            self.core.close(link, CLOSE_TIMEOUT, "internal error")
        finally:
            if link.judging is not None and not link.judging.done():
                # what came before the close is judged (and stored) as it was read
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(link.judging), JUDGING_GRACE_S)
            await self.core.finish(link)
        return outcome

    async def _handshake(self, link: Link, want: Wanted | None) -> Outcome:
        with self.core.stalls.watching():
            return await self._handshake_watched(link, want)

    async def _handshake_watched(self, link: Link, want: Wanted | None) -> Outcome:
        loop = asyncio.get_running_loop()
        timeout, stalls = self.core.settings.handshake_timeout, self.core.stalls
        start = loop.time()
        before = stalls.total(time.monotonic())
        conn = link.conn

        def deadline() -> float:
            """``timeout`` of this host's running time: its own stalls (a starved CPU) are added,
            up to ``STALLED_TIMEOUTS`` timeouts in all (a slot squatter gets no more than that,
            and nothing more at all from a host that runs freely)."""
            stalled = stalls.total(time.monotonic()) - before
            return start + min(timeout + stalled, STALLED_TIMEOUTS * timeout)

        while conn.state in (State.AWAIT_HELLO, State.AWAIT_AUTH):
            try:
                raw = await within(link.ws.recv(), deadline() - loop.time())
            except TimeoutError:
                if loop.time() < deadline():
                    continue  # this host stalled meanwhile: the peer gets that time back
                self.core.close(link, CLOSE_TIMEOUT, "handshake not done in time")
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

    def _opened(self, link: Link, event: Opened, want: Wanted | None) -> Outcome:
        peer = event.peer
        known = self.core.registry.known(peer.id)
        peers = [s for s in self._slots() if s.authenticated and s.handle is not link
                 and s.handle.peer is not None and self.core.registry.is_current(s.handle, s.handle.peer.id)]
        verdict = admit_peer(peers, link.conn.remote_ip, self.core.settings.slots, known)
        if not isinstance(verdict, Admit):
            self.core.close(link, CLOSE_TRY_AGAIN, verdict.reason)
            return Outcome.FAILED
        if isinstance(verdict.evict, Link):
            log.warning("dropping idle %s to make room for %s", verdict.evict.describe(),
                        link.describe())
            self.core.close(verdict.evict, CLOSE_TRY_AGAIN, "making room for a newcomer")
        if want is not None and want.peer_id != peer.id:
            want.peer_id = peer.id
        offer = self.core.registry.offer(link, peer, event.key)
        if not offer.accepted:
            log.info("keeping the existing connection with %s", peer.id)
            self.core.close(link, CLOSE_NORMAL, REASON_DUPLICATE)
            return Outcome.DUPLICATE
        if offer.replaced is not None:
            log.info("connection with %s replaces an older one", link.describe())
            self.core.close(offer.replaced, CLOSE_NORMAL, REASON_DUPLICATE)
        if offer.announce:
            log.info("peer up: %s", link.describe())
            self.core.call(self.core.app.peer_up, peer)
        self._welcome(link)
        if offer.announce and peer.port:
            news = encode_peers([PeerAddress(peer.id, peer.host, peer.port)])
            for other_id, other in self.core.registry.items():
                if other_id != peer.id:
                    self.core.send(other, news)
        self.core.notify_changed()
        return Outcome.UP

    def _welcome(self, link: Link) -> None:
        """Right after the handshake: recent history (sync), our catch-up summary (have), the
        peers we know (gossip) and who is here (presence)."""
        history = self.core.ask(self.core.app.sync_batch, [])
        for frame in encode_sync(history, sig_for=self.core.sig_for):
            self.core.send(link, frame)
        known = [
            PeerAddress(p.id, p.host, p.port) for p in self.core.registry.peers()
            if link.peer is not None and p.id != link.peer.id and p.port
        ]
        if known:
            self.core.send(link, encode_peers(known))
        self.core.send(link, self.core.presence_frame())
        loop = asyncio.get_running_loop()
        link.tasks.append(loop.create_task(self._send_have(link)))
        link.tasks.append(loop.create_task(self.core.heartbeat(link)))
        link.tasks.append(loop.create_task(self.core.ack_loop(link)))

    async def _send_have(self, link: Link) -> None:
        """Our catch-up summary, read from the store on a worker thread (never on the loop)."""
        self.core.send(link, encode_have(await self.core.ask_off_loop(self.core.app.summary, {})))

    async def _read_loop(self, link: Link) -> None:
        conn = link.conn
        while conn.state is State.OPEN:
            raw = await link.ws.recv()
            for event in conn.receive_text(raw, time.time()):
                await self._handle(link, event)
            link.wake.set()

    async def _handle(self, link: Link, event: Event) -> None:
        peer = link.peer
        peer_id = peer.id if peer is not None else ""
        match event:
            case Messages():
                await self.judge.on_messages(link, event)
            case Have(summary=summary):
                self.core.call(self.core.app.peer_has, peer_id, summary)
                link.wanted = summary  # the newest wins (LinkCore.catch_up)
                if link.catchup is None or link.catchup.done():
                    link.catchup = asyncio.get_running_loop().create_task(
                        self.core.catch_up(link))
            case Acked(ids=ids):
                self.core.call(self.core.app.acked, peer_id, ids)
            case RefusedByPeer(refusals=refusals):
                log.warning("%s refused %d of our messages (%s)", link.describe(),
                            len(refusals), refusals[0][1] if refusals else "")
                self.core.call(self.core.app.refused, peer_id, refusals)
            case PresenceReport(people=people):
                self.core.call(self.core.app.peer_presence, peer_id,
                           tuple(Presence(p.name, p.device, p.since) for p in people))
            case Gossip(addresses=addresses):
                link.neighbours.update(a.peer_id for a in addresses)
                self._learn(addresses, link)
            case Live(frame=frame):
                self.core.call(self.core.app.peer_signal, peer_id, frame)
            case IdentityChanged():
                self._identity_changed(event)
            case Closed(code=code, reason=reason, down_reason=down):
                link.down_reason = link.down_reason or down
                self.core.closing(link, code, reason)

    def _learn(self, addresses: tuple[PeerAddress, ...], via: Link) -> None:
        """Gossip: dial peers we neither know nor already try to reach."""
        wanted = self.core.dialer.wanted_ids()
        for a in addresses:
            if a.peer_id == self.core.me.id or a.peer_id in self.core.registry or a.peer_id in wanted:
                continue
            if self.core.trust.is_blocked(a.peer_id):
                continue
            host = gossip_host(a.host, via.conn.remote_ip)
            log.info("learned peer %s at %s:%s from %s", a.peer_id, host, a.port, via.describe())
            self.want(host, a.port, a.peer_id, Source.GOSSIP)
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
            self.core.call(self.core.app.identity_warning, event.peer_id, event.name,
                       event.old_fingerprint, event.new_fingerprint)
