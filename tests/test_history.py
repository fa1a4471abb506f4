"""History that survives: hub + real SQLite stores, catch-up over real WebSockets, outbox, channels."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fletchat.clock import HLC, MAX_DRIFT_MS
from fletchat.events import Outcome
from fletchat.hub import ChannelsChanged, Delivered, Hub, HubSession, dm_channel
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import Message, Peer, ValidationError
from fletchat.node import mesh_for_hub
from fletchat.store import MARK_END, MARK_START, Store
from tests.timing import scaled


def make(tmp_path: Path, peer_id: str) -> Hub:
    return Hub(peer_id, store=Store.open(tmp_path / f"{peer_id}.db"))


def stamped(msg: Message, seq: int = 1) -> Message:
    """``msg`` as its origin sends it: with its clock stamp and seq."""
    return replace(msg, hlc=HLC(msg.origin).now().encode(), seq=seq)


def joined(hub: Hub, name: str) -> HubSession:
    s = HubSession(hub, key=f"{hub.peer_id}-{name}")
    s.join(name)
    return s


def test_restart_shows_history_as_it_was(tmp_path):
    hub = make(tmp_path, "p1")
    ann = joined(hub, "Ann")
    sent = [ann.send(f"message {i}") for i in range(30)]
    before = hub.history()
    hub.close()

    again = make(tmp_path, "p1")
    after = again.history()
    assert [m.id for m in after] == [m.id for m in before]
    assert [m.text for m in after if m.kind == "chat"] == [m.text for m in sent]
    # The clock and the origin's counter carry on from where they were.
    nxt = HubSession(again, key="k")
    nxt.join("Ann")
    m = nxt.send("after the restart")
    assert m.hlc > after[-1].hlc and m.seq == after[-1].seq + 2
    again.close()


def test_duplicates_from_a_previous_run_are_not_shown_again(tmp_path):
    hub = make(tmp_path, "p1")
    msg = stamped(Message.chat("Bob", "seen before", "p2"))
    assert hub.receive(msg, "p2", verified=True).outcome is Outcome.ACCEPTED
    hub.close()
    again = make(tmp_path, "p1")
    shown: list = []
    again.add_listener(shown.append)
    assert again.receive(msg, "p2", verified=True).outcome is Outcome.DUPLICATE
    assert not [e for e in shown if isinstance(e, Message)]
    again.close()


def test_same_order_everywhere_even_with_skewed_clocks(tmp_path):
    a, b = make(tmp_path, "a"), make(tmp_path, "b")
    # b's wall clock runs 45 s behind; the hybrid clock still orders causally (it follows a
    # peer's clock up to MAX_ADOPT_MS ahead of its own).
    b.wall = lambda: int(time.time() * 1000) - 45_000
    b.clock = HLC("b", wall=b.wall)
    ann, bob = joined(a, "Ann"), joined(b, "Bob")
    for i in range(5):
        m = ann.send(f"a{i}")
        assert b.receive(m, "a", verified=True).stored
        r = bob.send(f"reply {i}")
        assert a.receive(r, "b", verified=True).stored
    order_a = [m.id for m in a.history() if m.kind == "chat"]
    order_b = [m.id for m in b.history() if m.kind == "chat"]
    assert order_a == order_b
    assert [m.text for m in a.history() if m.kind == "chat"][:2] == ["a0", "reply 0"]


def test_a_clock_far_in_the_future_is_refused(tmp_path):
    hub = make(tmp_path, "p1")
    far = HLC("evil", wall=lambda: int(time.time() * 1000) + MAX_DRIFT_MS * 10)
    bad = Message.chat("Eve", "from the future", "evil")
    from dataclasses import replace

    acc = hub.receive(replace(bad, hlc=far.now().encode(), seq=1), "evil", verified=True)
    assert acc.outcome is Outcome.REFUSED and "ahead of ours" in acc.reason
    assert hub.history() == []


def test_outbox_pending_until_a_peer_confirms(tmp_path):
    hub = make(tmp_path, "p1")
    events: list = []
    hub.add_listener(events.append)
    ann = joined(hub, "Ann")
    m = ann.send("written while alone")
    assert m.id in hub.pending_ids()
    # A peer's catch-up summary that covers our seq confirms it...
    hub.peer_has("p2", {"p1": m.seq})
    assert m.id not in hub.pending_ids()
    delivered = [e for e in events if isinstance(e, Delivered)]
    assert delivered and m.id in delivered[-1].ids
    # ...and so does a direct receipt.
    m2 = ann.send("second")
    hub.acked("p2", (m2.id,))
    assert hub.pending_ids() == set()


def test_channels_history_and_search_are_per_channel(tmp_path):
    hub = make(tmp_path, "p1")
    events: list = []
    hub.add_listener(events.append)
    ann = joined(hub, "Ann")
    lunch = ann.create_channel("#Lunch")
    assert lunch == "lunch" and "lunch" in hub.channels()
    assert any(isinstance(e, ChannelsChanged) and "lunch" in e.channels for e in events)
    ann.send("pizza at noon?", channel=lunch)
    ann.send("standup notes are up")
    assert [m.text for m in hub.history(lunch) if m.kind == "chat"] == ["pizza at noon?"]
    assert "pizza at noon?" not in [m.text for m in hub.history()]
    hits = hub.search("piz")
    assert [m.text for m, _ in hits] == ["pizza at noon?"]
    assert f"{MARK_START}pizza{MARK_END}" in hits[0][1]
    assert hub.search("notes", channel=lunch) == []
    with pytest.raises(ValidationError):
        ann.create_channel("no spaces please")


def test_direct_channel_is_the_same_from_both_sides(tmp_path):
    hub = make(tmp_path, "p1")
    ann, bob, cy = joined(hub, "Ann"), joined(hub, "Bob"), joined(hub, "Cy")
    assert ann.direct_channel("Bob") == bob.direct_channel("Ann") == dm_channel("Ann", "Bob")
    dm = ann.direct_channel("Bob")
    assert ann.can_see(dm) and bob.can_see(dm) and not cy.can_see(dm)
    with pytest.raises(ValidationError):
        ann.direct_channel("Ann")


def test_catch_up_converges_in_bounded_batches(tmp_path):
    a, b = make(tmp_path, "a"), make(tmp_path, "b")
    ann = joined(a, "Ann")
    for i in range(250):
        ann.send(f"m{i}")
    batches = 0
    after = None
    while True:
        batch = a.missing(b.summary(), after, 100)
        assert len(batch) <= 100
        batches += 1
        for m in batch:
            assert b.receive(m, "a", verified=True, relay=False).stored
        b.flush()
        if len(batch) < 100:
            break
        after = (batch[-1].origin, batch[-1].seq)
    assert batches == 3
    assert [m.id for m in b.history(limit=1000)] == [m.id for m in a.history(limit=1000)]
    assert a.missing(b.summary(), None, 100) == []


async def test_catch_up_over_websockets_and_delivery_receipts(tmp_path):
    """A peer that was away gets what it missed over a real connection; the sender's outbox
    empties when the receipts come back."""
    a, b = make(tmp_path, "node-a"), make(tmp_path, "node-b")
    ann = joined(a, "Ann")
    for i in range(300):
        ann.send(f"while you were away {i}")
    assert len(a.pending_ids()) == 301  # join + 300, nobody reachable
    delivered: list = []
    a.add_listener(lambda e: delivered.extend(e.ids) if isinstance(e, Delivered) else None)

    def mesh_for(hub: Hub, name: str) -> Mesh:
        return mesh_for_hub(hub, Peer(hub.peer_id, name), settings=MeshSettings(host="127.0.0.1"))

    ma, mb = mesh_for(a, "Ann"), mesh_for(b, "Bob")
    await ma.start()
    await mb.start()
    try:
        mb.add_peer_address("127.0.0.1", ma.port)
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline and (
            len(b.history(limit=1000)) < 301 or a.pending_ids()
        ):
            await asyncio.sleep(0.1)
        got = [m.text for m in b.history(limit=1000) if m.kind == "chat"]
        assert got == [f"while you were away {i}" for i in range(300)]
        assert a.pending_ids() == set()
        assert len(set(delivered)) == 301
        # Live messages after the catch-up arrive once.
        live = ann.send("and now live")
        while time.monotonic() < deadline and b.store.get(live.id) is None:
            await asyncio.sleep(0.05)
            b.history()  # flushes the batched writer
        assert [m.id for m in b.history(limit=1000)].count(live.id) == 1
    finally:
        await mb.stop()
        await ma.stop()
        a.close()
        b.close()
