"""Relays without waste: in a full mesh a message crosses each link once; the periodic ``have``
exchange (anti-entropy) repairs what a relay skipped. Real hubs, stores and WebSockets on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import replace

from fletchat.clock import HLC
from fletchat.hub import Hub, HubSession
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import Message, Peer
from fletchat.node import mesh_for_hub
from fletchat.store import Store


class CountingHub(Hub):
    """A real hub that also counts how often each message id reaches it live from the mesh
    (catch-up batches, ``relay=False``, go through the same pipeline and are not counted)."""

    def receive(self, msg: Message, from_peer: str, *, verified: bool = False, relay: bool = True):
        if relay:
            self.arrivals[msg.id] += 1
        return super().receive(msg, from_peer, verified=verified, relay=relay)


def make(tmp_path, name: str) -> tuple[CountingHub, Mesh]:
    hub = CountingHub(f"peer-{name}", store=Store.open(tmp_path / f"{name}.db"))
    hub.arrivals = Counter()
    settings = MeshSettings(host="127.0.0.1", anti_entropy=0.5)
    mesh = mesh_for_hub(hub, Peer(hub.peer_id, name), settings=settings)
    return hub, mesh


async def eventually(cond, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


async def test_full_mesh_relays_nothing_and_anti_entropy_repairs_gaps(tmp_path):
    nodes = [make(tmp_path, n) for n in ("a", "b", "c")]
    for _, mesh in nodes:
        await mesh.start()
    (a, ma), (b, mb), (c, mc) = nodes
    try:
        mb.add_peer_address("127.0.0.1", ma.port)
        mc.add_peer_address("127.0.0.1", mb.port)  # c learns a by gossip
        assert await eventually(lambda: all(len(m.peers()) == 2 for _, m in nodes))
        await asyncio.sleep(0.5)  # let the gossip about neighbours settle

        ann = HubSession(a, key="ann")
        ann.join("Ann")
        sent = [ann.send(f"hello {i}") for i in range(20)]
        assert await eventually(
            lambda: all(all(h.arrivals[m.id] >= 1 for m in sent) for h in (b, c))
        )
        await asyncio.sleep(0.5)
        for hub in (b, c):
            # Each message crossed the link from its author once; nobody relayed a copy.
            assert max(hub.arrivals[m.id] for m in sent) == 1, hub.arrivals

        # A message that reached b by a path that is not relayed (as a skipped relay would)
        # still reaches a and c through the periodic summary exchange.
        stray = replace(Message.chat("Zed", "only b had this", "peer-zed"), seq=1,
                        hlc=HLC("peer-zed").now().encode())
        assert b.receive(stray, "peer-zed", verified=False, relay=False).stored
        assert await eventually(
            lambda: [m.id for m in a.history()].count(stray.id) == 1
            and [m.id for m in c.history()].count(stray.id) == 1
        )
    finally:
        for hub, mesh in nodes:
            await mesh.stop()
            hub.close()
