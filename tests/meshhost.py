"""A ``MeshHost`` for mesh tests without a hub: it records what the mesh hands it and answers
with plain values (history to sync, presence to announce). Everything it is given is stored.
Also what the mesh test modules share: a pool of started nodes for their ``nodes`` fixture, and
``chat()``, a message stamped as its origin's hub would stamp it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fletchat.clock import HLC
from fletchat.events import Acceptance, Outcome, Presence
from fletchat.model import Message, Peer


async def node_pool(factory: Callable[..., Any]
                    ) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Yield ``make(peer_id, **options)``: builds a node with ``factory`` (anything with ``mesh``
    and ``trust``), starts its mesh; at the end every mesh is stopped and every trust closed."""
    made: list[Any] = []

    async def make(peer_id: str, **options: Any) -> Any:
        node = factory(peer_id, **options)
        await node.mesh.start()
        made.append(node)
        return node

    try:
        yield make
    finally:
        await asyncio.gather(*(n.mesh.stop() for n in made), return_exceptions=True)
        for n in made:
            n.trust.close()


_clocks: dict[str, tuple[HLC, list[int]]] = {}


def chat(text: str, origin: str) -> Message:
    """A message as its origin's hub stamps it: signed messages carry their hlc and seq."""
    clock, seq = _clocks.setdefault(origin, (HLC(origin), [0]))
    seq[0] += 1
    return replace(Message.chat(origin.capitalize(), text, origin), hlc=clock.now().encode(),
                   seq=seq[0])


@dataclass
class RecordingHost:
    history: list[Message] = field(default_factory=list)  # sent to a newcomer (sync)
    presence: tuple[Presence, ...] = ()
    msgs: list[tuple[Message, str]] = field(default_factory=list)
    verified: dict[str, bool] = field(default_factory=dict)  # message id -> verified
    ups: list[Peer] = field(default_factory=list)
    downs: list[tuple[Peer, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str, str]] = field(default_factory=list)
    refusals: list[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    acks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    people: dict[str, tuple[Presence, ...]] = field(default_factory=dict)
    refuse: Callable[[Message], str] = lambda msg: ""  # a reason to refuse ``msg`` ("" = accept)
    stored_waits: list[tuple[str, ...]] = field(default_factory=list)

    def receive(
        self, msg: Message, from_peer: str, *, verified: bool, relay: bool = True
    ) -> Acceptance:
        reason = self.refuse(msg)
        if reason:
            return Acceptance(Outcome.REFUSED, reason, msg)
        if msg.id in self.verified:
            return Acceptance(Outcome.DUPLICATE, "", msg)
        self.verified[msg.id] = verified
        self.msgs.append((msg, from_peer))
        return Acceptance(Outcome.ACCEPTED, "", msg)

    def receive_page(self, items: list[tuple[Message, bool]], from_peer: str
                     ) -> list[Acceptance]:
        return [self.receive(m, from_peer, verified=v, relay=False) for m, v in items]

    async def wait_stored(self, ids: tuple[str, ...]) -> None:
        self.stored_waits.append(ids)

    def refused(self, peer_id: str, refusals: tuple[tuple[str, str], ...]) -> None:
        self.refusals.append((peer_id, refusals))

    def local_presence(self) -> tuple[Presence, ...]:
        return self.presence

    def peer_presence(self, peer_id: str, people: tuple[Presence, ...]) -> None:
        self.people[peer_id] = people

    def peer_up(self, peer: Peer) -> None:
        self.ups.append(peer)

    def peer_down(self, peer: Peer, reason: str = "") -> None:
        self.downs.append((peer, reason))
        self.people.pop(peer.id, None)

    def identity_warning(self, peer_id: str, name: str, old_fp: str, new_fp: str) -> None:
        self.warnings.append((peer_id, name, old_fp, new_fp))

    def sync_batch(self) -> list[Message]:
        return list(self.history)

    def summary(self) -> dict[str, int]:
        return {}

    def missing(
        self, summary: dict[str, int], after: tuple[str, int] | None, limit: int, peer: str = ""
    ) -> list[Message]:
        return []

    def peer_has(self, peer_id: str, summary: dict[str, int]) -> None:
        pass

    def acked(self, peer_id: str, ids: tuple[str, ...]) -> None:
        self.acks.append((peer_id, ids))
