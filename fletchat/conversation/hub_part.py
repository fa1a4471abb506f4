"""The hub's side of the conversation part (mixed into ``hub.Hub``): what ``ConvState`` needs of
the hub (find a message, publish, background work, live frames) and what the mesh calls (live
signals, stubs vouched for in catch-up, reach)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..model import Message, Peer
from ..outbox import wire
from ..presence import PresenceMethods
from .fields import Redaction


class ConvHubMethods:
    peer_id: str
    store: Any
    trust: Any
    transport: Any
    conv: Any
    _qlock: Any
    _queued: dict[str, tuple[Message, bool, int]]
    _bg: Any
    outbox: Any
    _publish: Callable[[Any], None]
    _receipts_later: Callable[..., None]

    def vouched(self, msgs: list[Message]) -> list[Message]:
        """Catch-up answers: each deleted slot with the delete that vouches for it."""
        return [self._vouch(m) if m.conv is not None and m.conv.redacted_by else m for m in msgs]

    def _vouch(self, stub: Message) -> Message:
        """A deleted slot travels with the delete that erased it (and its signature)."""
        assert stub.conv is not None
        found = self.find(stub.conv.redacted_by)
        if found is None:
            return stub
        sig = self.trust.sig_for(found[0]) if self.trust is not None else ""
        return replace(stub, conv=replace(stub.conv, redacted=Redaction(found[0], sig)))

    def find(self, msg_id: str) -> tuple[Message, bool] | None:
        """(message, verified) held here for ``msg_id``: queued for the store, or stored."""
        with self._qlock:
            q = self._queued.get(msg_id)
        if q is not None:
            return q[0], q[1]
        rec = self.store.get(msg_id)
        return (wire(rec), rec.verified) if rec is not None else None

    # ---- catch-up summaries and receipts: the outbox's, and reach's ("on N of M devices") ----
    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None:
        self.conv.peer_has(peer_id, summary)
        self._receipts_later(summary=(peer_id, dict(summary)))  # coalesced (outbox.py)

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None:
        self.conv.acked(peer_id, ids)
        self._outbox_later(delivered=ids)  # coalesced outbox marks (hub.py)

    def publish(self, event: Any) -> None:
        self._publish(event)

    def background(self, work: Callable[[], None]) -> None:
        self._bg.submit(work)

    def send_live(self, frame: str) -> None:
        send = getattr(self.transport, "send_live", None)  # test transports may have none
        if send is not None:
            send(frame)

    def peer_signal(self, peer_id: str, frame: Any) -> None:
        self.conv.peer_signal(peer_id, frame)

    def peer_up(self, peer: Peer) -> None:
        self.conv.peer_up(peer.id, peer.host)
        PresenceMethods.peer_up(self, peer)

    def reach(self, msg: Message) -> tuple[int, int]:
        connected = {p.id for p in self.transport.peers()}
        return self.conv.reach(msg, connected)
