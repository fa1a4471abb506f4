"""Relays without waste: in a full mesh a message crosses each link once; the periodic ``have``
exchange (anti-entropy) repairs what a relay skipped. Real hubs, stores and WebSockets on loopback.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from fletchat.clock import HLC
from fletchat.hub import Hub, HubSession
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import Message, Peer
from fletchat.node import mesh_for_hub
from fletchat.store import Store
from tests.timing import eventually, never_within


class CountingHub(Hub):
    """A real hub that also counts how often each message id reaches it live from the mesh (a
    relayed copy is a second live arrival). Catch-up deliveries (``relay=False``, the same
    pipeline) are counted apart: anti-entropy may resend what is still in flight when a loop is
    slow, which is repair, not relaying."""

    def receive(self, msg: Message, from_peer: str, *, verified: bool = False, relay: bool = True):
        (self.arrivals if relay else self.repairs)[msg.id] += 1
        return super().receive(msg, from_peer, verified=verified, relay=relay)


def make(tmp_path, name: str) -> tuple[CountingHub, Mesh]:
    hub = CountingHub(f"peer-{name}", store=Store.open(tmp_path / f"{name}.db"))
    hub.arrivals = Counter()
    hub.repairs = Counter()
    settings = MeshSettings(host="127.0.0.1", anti_entropy=0.5)
    mesh = mesh_for_hub(hub, Peer(hub.peer_id, name), settings=settings)
    return hub, mesh


def knows_its_neighbours_links(nodes: list[tuple[CountingHub, Mesh]]) -> bool:
    """Every connection has told its peer which others it is connected to (gossip): only then
    does a relay skip the links that already carry a message, so only then is "nothing relayed"
    what a full mesh must show."""
    ids = {hub.peer_id for hub, _ in nodes}
    return all(
        len(mesh.peers()) == len(ids) - 1
        and all(
            conn.neighbours >= ids - {hub.peer_id, conn.peer.id}
            for conn in mesh._registry.handles()
        )
        for hub, mesh in nodes
    )


async def test_full_mesh_relays_nothing_and_anti_entropy_repairs_gaps(tmp_path):
    nodes = [make(tmp_path, n) for n in ("a", "b", "c")]
    for _, mesh in nodes:
        await mesh.start()
    (a, ma), (b, mb), (c, mc) = nodes
    try:
        mb.add_peer_address("127.0.0.1", ma.port)
        mc.add_peer_address("127.0.0.1", mb.port)  # c learns a by gossip
        await eventually(lambda: all(len(m.peers()) == 2 for _, m in nodes), "a full mesh")
        await eventually(lambda: knows_its_neighbours_links(nodes), "the gossip settled")

        ann = HubSession(a, key="ann")
        ann.join("Ann")
        sent = [ann.send(f"hello {i}") for i in range(20)]
        await eventually(
            lambda: all(all(h.arrivals[m.id] >= 1 for m in sent) for h in (b, c)), "all arrived"
        )
        # Each message crossed the link from its author once; nobody relayed a copy.
        await never_within(
            lambda: any(h.arrivals[m.id] > 1 for m in sent for h in (b, c)), "a relayed copy", 0.5
        )

        # A message that reached b by a path that is not relayed (as a skipped relay would)
        # still reaches a and c through the periodic summary exchange.
        stray = replace(Message.chat("Zed", "only b had this", "peer-zed"), seq=1,
                        hlc=HLC("peer-zed").now().encode())
        assert b.receive(stray, "peer-zed", verified=False, relay=False).stored
        await eventually(
            lambda: [m.id for m in a.history()].count(stray.id) == 1
            and [m.id for m in c.history()].count(stray.id) == 1,
            "anti-entropy brought the stray message to a and c",
        )
    finally:
        for hub, mesh in nodes:
            await mesh.stop()
            hub.close()
