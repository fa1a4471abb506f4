"""The in-memory "certainly not stored" answers that let the hub skip a store lookup: they may
only ever say "not held" for ids and slots the store really does not hold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fletchat.clock import HLC, Stamp
from fletchat.events import Outcome
from fletchat.hub import Hub
from fletchat.idfilter import IdFilter, KnownIds
from fletchat.model import Message, new_id
from fletchat.store import Record, Store
from tests.timing import eventually_sync


def remote(text: str, seq: int, origin: str = "peer-b", msg_id: str | None = None) -> Message:
    m = Message.chat("Bob", text, origin)
    return replace(m, id=msg_id or m.id, hlc=HLC(origin).now().encode(), seq=seq)


def test_an_added_id_is_always_found_and_new_ones_mostly_are_not():
    f = IdFilter(10_000)
    ids = [new_id() for _ in range(10_000)]
    for i in ids:
        f.add(i)
    assert all(f.may_contain(i) for i in ids)
    false = sum(f.may_contain(new_id()) for _ in range(10_000))
    assert false < 300  # about 1 %: each one only costs the lookup it would have made anyway


def test_known_ids_say_may_hold_until_loaded_and_for_slots_at_or_below_the_top():
    k = KnownIds(100)
    assert k.may_hold("x", "o", 9)  # not loaded yet: ask the store
    k.loaded(["a"], {"o": 5})
    assert k.may_hold("a", "o", 9)  # stored id
    assert k.may_hold("x", "o", 5)  # slot at or below the origin's top
    assert not k.may_hold("x", "o", 6)
    k.add("y", "o", 7)
    assert k.may_hold("y", "p", 1) and k.may_hold("z", "o", 7)
    assert not k.may_hold("z", "o", 8)


def test_a_reopened_store_knows_every_stored_id_and_slot(tmp_path: Path):
    store = Store.open(tmp_path / "h.db")
    msgs = [remote(f"m{i}", i + 1) for i in range(300)]
    store.add_many([Record(m, Stamp.decode(m.hlc), m.seq, verified=True) for m in msgs])
    store.close()
    again = Store.open(tmp_path / "h.db")
    eventually_sync(lambda: again.known.ready, "the stored ids are loaded")
    assert all(again.may_hold(m.id, "elsewhere", 10**6) for m in msgs)
    assert all(again.may_hold(new_id(), m.origin, m.seq) for m in msgs)
    assert not again.may_hold(new_id(), "peer-b", 301)
    again.close()


def test_a_message_reusing_an_old_stored_id_is_still_refused_after_a_restart(tmp_path: Path):
    hub = Hub("me", store=Store.open(tmp_path / "h.db"))
    old = remote("the real one", 1)
    assert hub.receive(old, "peer-b", verified=True).outcome is Outcome.ACCEPTED
    assert hub.flush()
    hub.close()
    hub = Hub("me", store=Store.open(tmp_path / "h.db"))  # nothing remembered but the store
    eventually_sync(lambda: hub.store.known.ready, "the stored ids are loaded")
    copy = remote("a different text under the same id", 2, msg_id=old.id)
    got = hub.receive(copy, "peer-b", verified=True)
    assert got.outcome is Outcome.REFUSED and "already another message" in got.reason
    hub.close()
