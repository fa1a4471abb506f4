"""The hub's one acceptance pipeline against hostile input, on real SQLite files (issue 11).

Each test names the hole it closes: #2 catch-up slot squatting, #3 acks and refusals, #6 history
flood (quotas), #7 clock skew, #8 gapped sequences. Storage faults (#12) are in test_storage_faults.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from fletchat.clock import HLC, MAX_ADOPT_MS, Stamp
from fletchat.events import MessageRefused, Outcome
from fletchat.hub import Hub, HubSession
from fletchat.model import (
    KIND_CHANNEL,
    MAX_ORIGIN_CHANNELS_PER_DAY,
    MAX_ORIGIN_MESSAGES_PER_MINUTE,
    Message,
)
from fletchat.store import Store
from fletchat.trust import Trust

NOW_MS = int(time.time() * 1000)


def hub_at(tmp_path: Path, peer_id: str, *, trust: bool = False, wall_offset_ms: int = 0) -> Hub:
    t = Trust.open(tmp_path / f"{peer_id}-trust", peer_id) if trust else None
    return Hub(peer_id, store=Store.open(tmp_path / f"{peer_id}.db"), trust=t,
               wall=lambda: int(time.time() * 1000) + wall_offset_ms)


def written(origin: str, n: int, *, start: int = 1, text: str = "real", wall_ms: int | None = None,
            spread_ms: int = 0) -> list[Message]:
    """``n`` messages as ``origin`` writes them: seq start.., stamped by its clock."""
    base = NOW_MS if wall_ms is None else wall_ms
    out = []
    for i in range(n):
        at = base + i * spread_ms
        clock = HLC(origin, wall=lambda at=at: at)
        m = Message.chat("Xena", f"{text} {start + i}", origin)
        out.append(replace(m, ts=at / 1000, hlc=clock.now().encode(), seq=start + i))
    return out


def texts(hub: Hub, limit: int = 1000) -> list[str]:
    return [m.text for m in hub.history(limit=limit) if m.kind == "chat"]


# ---------------------------------------------------------------- #2 slot squatting


def test_verified_messages_take_back_slots_and_ids_an_unsigned_squatter_took(tmp_path):
    r = hub_at(tmp_path, "r", trust=True)
    x_key = Trust.open(tmp_path / "x-trust", "x").identity.public_key
    r.trust.store.check("x", x_key, "X")  # r has met x: x's messages can be verified here
    real = written("x", 300, spread_ms=1)
    squat = written("x", 296, start=5, text="forged")  # other ids, same (origin, seq) slots
    same_id = replace(real[0], text="forged with the real id")
    for m in [same_id, *squat]:
        assert r.receive(m, "evil", verified=False, relay=False).outcome is Outcome.ACCEPTED
    r.flush()
    # Unverified rows never make r claim it holds x's messages.
    assert r.summary().get("x", 0) == 0
    for m in real:
        acc = r.receive(m, "x", verified=True, relay=False)
        assert acc.outcome is Outcome.ACCEPTED, acc.reason
    r.flush()
    assert texts(r) == [f"real {i}" for i in range(1, 301)]
    assert r.summary()["x"] == 300
    # ...and once the real one holds the slot, an unverified copy cannot take it again.
    again = r.receive(squat[0], "evil", verified=False, relay=False)
    assert again.outcome is Outcome.REFUSED and "already another message" in again.reason
    r.close()


class _WriterByHand:
    """Takes records and commits nothing: the test decides which batch commits when."""

    def __init__(self) -> None:
        self.records: list = []

    def submit_many(self, records: list) -> int:
        self.records += records
        return len(self.records)


def test_a_squatter_committed_late_does_not_free_the_slot_its_verified_replacement_holds(tmp_path):
    """The unverified row a verified message replaced, committed in an earlier batch, used to
    drop the slot's hold: until the verified one committed, the slot looked free (or held by the
    squatter) to the next claim."""
    r = hub_at(tmp_path, "r")
    store_writer, r._writer = r._writer, (writer := _WriterByHand())
    real = written("x", 5)[4]
    squat = replace(written("x", 5, text="forged")[4], id="f" * 32)
    assert r.receive(squat, "evil", verified=False, relay=False).outcome is Outcome.ACCEPTED
    assert r.receive(real, "x", verified=True, relay=False).outcome is Outcome.ACCEPTED
    r._committed([writer.records[0]], [True])  # the squatter's batch commits first
    by_id, in_slot = r._held(replace(real, id="e" * 32, text="another claim of x's seq 5"))
    assert by_id is None
    assert in_slot is not None and in_slot.msg is real and in_slot.verified
    r._committed(writer.records[1:], [True])
    assert r._held(real) == (None, None)  # all committed: nothing held in memory any more
    r._writer = store_writer
    r.close()


def test_the_sender_never_sees_delivered_for_what_the_receiver_did_not_store(tmp_path):
    x = hub_at(tmp_path, "x", trust=True)
    r = hub_at(tmp_path, "r", trust=True)
    r.trust.store.check("x", x.trust.identity.public_key, "X")
    ann = HubSession(x, key="k")
    ann.join("Xena")
    mine = [ann.send(f"mine {i}") for i in range(20)]
    for m in written("x", 20, start=2, text="forged"):  # squats x's slots 2..21 at r
        r.receive(m, "evil", verified=False, relay=False)
    r.flush()
    x.peer_has("r", r.summary())  # r's catch-up summary, as the mesh hands it over
    assert {m.id for m in mine} <= x.pending_ids()
    x.close()
    r.close()


# ---------------------------------------------------------------- #3 acks and refusals


def test_a_refusal_is_kept_with_the_outbox_row_and_published(tmp_path):
    x = hub_at(tmp_path, "x")
    events: list = []
    x.add_listener(events.append)
    s = HubSession(x, key="k")
    s.join("Xena")
    m = s.send("hello")
    x.refused("peer-b", ((m.id, "quota: x is over 600 messages a minute"), ("not-ours", "nope")))
    assert x.refusals() == {m.id: ("peer-b", "quota: x is over 600 messages a minute")}
    refused = [e for e in events if isinstance(e, MessageRefused)]
    assert refused == [MessageRefused("peer-b", ((m.id, "quota: x is over 600 messages a minute"),),
                                      refused[0].at)]
    assert m.id in x.pending_ids()  # refused by one peer is not delivered
    from fletchat.headless import event_line

    assert event_line(refused[0]) == {"event": "refused", "peer_id": "peer-b", "refused": [
        {"id": m.id, "reason": "quota: x is over 600 messages a minute"}], "at": refused[0].at}
    x.close()
    again = hub_at(tmp_path, "x")  # the reason survives a restart
    assert m.id in again.refusals()
    again.close()


def test_every_refusal_has_a_reason_and_nothing_refused_is_stored(tmp_path):
    r = hub_at(tmp_path, "r")
    unstamped = Message.chat("Eve", "no stamp", "e")
    no_seq = replace(written("e", 1)[0], seq=0)
    cases = [unstamped, no_seq]
    for m in cases:
        acc = r.receive(m, "e", verified=True)
        assert acc.outcome is Outcome.REFUSED and "hlc and seq are required" in acc.reason
    # A signed message is never restamped: it is stored exactly as signed, or not at all.
    assert r.history() == [] and r.store.get(unstamped.id) is None
    r.close()


# ---------------------------------------------------------------- #6 history flood


def test_per_origin_quota_holds_live_and_through_catch_up(tmp_path):
    r = hub_at(tmp_path, "r")
    flood = written("spam", MAX_ORIGIN_MESSAGES_PER_MINUTE + 100)  # all in one stamp minute
    live, synced = flood[:300], flood[300:]
    outcomes = [r.receive(m, "spam", verified=True).outcome for m in live]
    outcomes += [r.receive(m, "relay", verified=False, relay=False).outcome for m in synced]
    assert outcomes.count(Outcome.ACCEPTED) == MAX_ORIGIN_MESSAGES_PER_MINUTE
    refused = r.receive(written("spam", 1, start=10_000)[0], "other", verified=True, relay=False)
    assert refused.outcome is Outcome.REFUSED and refused.reason.startswith("quota:")
    # An honest history written over hours is not a flood: all of it is accepted.
    calm = written("calm", 2000, wall_ms=NOW_MS - 3_000 * 2000, spread_ms=3_000)
    assert all(r.receive(m, "calm", verified=True, relay=False).stored for m in calm)
    r.close()


def test_new_channels_per_origin_are_bounded(tmp_path):
    r = hub_at(tmp_path, "r")
    made = []
    for i, m in enumerate(written("spam", MAX_ORIGIN_CHANNELS_PER_DAY + 10)):
        made.append(r.receive(replace(m, kind=KIND_CHANNEL, text="", channel=f"c{i}"), "spam",
                              verified=True).outcome)
    assert made.count(Outcome.ACCEPTED) == MAX_ORIGIN_CHANNELS_PER_DAY
    assert len(r.channels()) == 1 + MAX_ORIGIN_CHANNELS_PER_DAY
    r.close()


# ---------------------------------------------------------------- #7 clock skew


def test_a_skewed_peer_cannot_drag_our_clock_or_get_the_victim_refused(tmp_path):
    victim = hub_at(tmp_path, "victim")
    slow = hub_at(tmp_path, "slow", wall_offset_ms=-2_000)  # a peer whose clock is 2 s slow
    skewed = written("evil", 1, wall_ms=int(time.time() * 1000) + 299_000)[0]
    assert victim.receive(skewed, "evil", verified=True).stored  # within the future bound...
    ahead = victim.clock.now().wall_ms - int(time.time() * 1000)
    assert ahead <= MAX_ADOPT_MS + 1_000  # ...but our clock followed it only MAX_ADOPT_MS
    s = HubSession(victim, key="k")
    s.join("Vic")
    own = s.send("my own message")
    acc = slow.receive(own, "victim", verified=True)
    assert acc.outcome is Outcome.ACCEPTED, acc.reason
    victim.close()
    slow.close()


def test_epoch_and_old_live_stamps_are_refused(tmp_path):
    r = hub_at(tmp_path, "r")
    epoch = written("old", 1, wall_ms=1_000)[0]
    for relay in (True, False):
        acc = r.receive(epoch, "old", verified=True, relay=relay)
        assert acc.outcome is Outcome.REFUSED and "before 2020" in acc.reason
    two_hours_ago = written("late", 1, wall_ms=NOW_MS - 2 * 3_600_000)[0]
    live = r.receive(two_hours_ago, "late", verified=True, relay=True)
    assert live.outcome is Outcome.REFUSED and "live message" in live.reason
    # The same message is ordinary history when it comes by catch-up.
    assert r.receive(two_hours_ago, "late", verified=True, relay=False).outcome is Outcome.ACCEPTED
    r.close()


def test_our_clock_restarts_from_our_own_stamps_not_a_peers(tmp_path):
    r = hub_at(tmp_path, "r")
    # from the wall clock now, not NOW_MS of import time: a loaded run may start this test minutes later
    ahead = written("fast", 1, wall_ms=int(time.time() * 1000) + 200_000)[0]
    assert r.receive(ahead, "fast", verified=True).stored
    r.close()
    again = hub_at(tmp_path, "r")
    assert again.clock.now() < Stamp.decode(ahead.hlc)
    again.close()


# ---------------------------------------------------------------- #8 gapped sequences


def test_gapped_sequences_are_sent_once_not_every_round(tmp_path):
    a, b = hub_at(tmp_path, "a"), hub_at(tmp_path, "b")
    gapped = written("x", 10) + written("x", 38, start=13)  # seq 11 and 12 never existed here
    for m in gapped:
        assert a.receive(m, "x", verified=True, relay=False).stored
    a.flush()
    rounds = []
    for _ in range(3):  # three anti-entropy rounds
        batch = a.missing(b.summary(), None, 200, peer="b")
        rounds.append(len(batch))
        for m in batch:
            b.receive(m, "a", verified=False, relay=False)
        b.flush()
    assert rounds == [48, 0, 0]
    assert b.summary() == {"x": 10}
    # A message that later fills the gap still goes out.
    a.receive(written("x", 1, start=11)[0], "x", verified=True, relay=False)
    a.flush()
    assert [m.seq for m in a.missing(b.summary(), None, 200, peer="b")] == [11]
    a.close()
    b.close()


async def test_a_new_connection_is_sent_what_a_gap_held_back_once_more(tmp_path):
    """What went out above a gap is not sent again on the same connection; a new connection gets
    it once more (frames queued on a connection that died may never have arrived: after an
    overload the gap can be exactly those messages)."""
    from fletchat.mesh import MeshSettings
    from fletchat.model import Peer
    from fletchat.node import mesh_for_hub
    from tests.timing import eventually

    a, b = hub_at(tmp_path, "node-a"), hub_at(tmp_path, "node-b")
    for m in written("x", 10) + written("x", 38, start=13):  # x's seq 11 and 12 never came here
        assert a.receive(m, "x", verified=True, relay=False).stored
    a.flush()
    answered: list[tuple[str, int]] = []
    real_missing = a.missing

    def missing(summary, after, limit, peer=""):
        out = real_missing(summary, after, limit, peer)
        answered.append((peer, len(out)))
        return out

    a.missing = missing  # type: ignore[method-assign]
    ma = mesh_for_hub(a, Peer("node-a", "Ann"), settings=MeshSettings(host="127.0.0.1"))
    await ma.start()
    try:
        for connection in (1, 2):
            mb = mesh_for_hub(b, Peer("node-b", "Bob"), settings=MeshSettings(host="127.0.0.1"))
            await mb.start()
            try:
                mb.add_peer_address("127.0.0.1", ma.port)
                await eventually(lambda c=connection: len({p for p, n in answered if n}) == c,
                                 f"connection {connection} caught up")
                await eventually(lambda: b.store.count() == 48, "b holds what a has")
                assert b.summary()["x"] == 10  # the gap stays: nobody has seq 11
            finally:
                await mb.stop()
        sent = [(p, n) for p, n in answered if n]
        # all 48 to a newcomer; to the new connection the 38 above the gap again (before: none)
        assert [n for _, n in sent] == [48, 38]
        assert sent[0][0] != sent[1][0] and all(p.startswith("node-b/") for p, _ in sent)
    finally:
        await ma.stop()
        a.close()
        b.close()


# ---------------------------------------------------------------- #3 over real sockets


async def test_a_refused_message_is_not_acknowledged_and_its_writer_learns_why(tmp_path):
    """An ack means "stored": a message the receiver refuses stays undelivered at its writer,
    whose hub hears the reason (and shows it on the row)."""
    from fletchat.mesh import MeshSettings
    from fletchat.model import Peer
    from fletchat.node import mesh_for_hub
    from tests.timing import eventually

    a = hub_at(tmp_path, "node-a", wall_offset_ms=600_000)  # a's clock runs 10 minutes fast
    b = hub_at(tmp_path, "node-b")
    events: list = []
    a.add_listener(events.append)
    ma = mesh_for_hub(a, Peer("node-a", "Ann"), settings=MeshSettings(host="127.0.0.1"))
    mb = mesh_for_hub(b, Peer("node-b", "Bob"), settings=MeshSettings(host="127.0.0.1"))
    await ma.start()
    await mb.start()
    try:
        mb.add_peer_address("127.0.0.1", ma.port)
        await eventually(lambda: a.lan_peers() and b.lan_peers(), "connected")
        s = HubSession(a, key="k")
        s.join("Ann")
        m = s.send("from ten minutes ahead")

        def heard() -> str:
            for e in events:
                if isinstance(e, MessageRefused):
                    for msg_id, reason in e.refusals:
                        if msg_id == m.id:
                            return reason
            return ""

        reason = await eventually(heard, "a hears why b refused it")
        assert "ahead of ours" in reason
        assert m.id in await a.pending_ids_async()
        assert a.refusals()[m.id] == ("node-b", reason)
        assert b.store.get(m.id) is None
    finally:
        await mb.stop()
        await ma.stop()
        a.close()
        b.close()


# ---------------------------------------------------------------- #4 ghost people


def test_presence_comes_only_from_live_connections_and_is_bounded(tmp_path):
    from fletchat.events import Presence
    from fletchat.model import KIND_JOIN, MAX_PRESENCE_PER_PEER, Peer

    r = hub_at(tmp_path, "r")
    # 3,000 joins from never-met origins, replayed by catch-up: chat lines, nobody online.
    for i in range(3000):
        join = replace(written(f"ghost-{i % 50}", 1, start=i // 50 + 1)[0], kind=KIND_JOIN,
                       text="", author=f"Ghost {i}")
        r.receive(join, "relay", verified=False, relay=False)
    assert r.online() == []
    # A list from a peer that is not connected is ignored...
    crowd = tuple(Presence(f"P{i}", "browser", 1.0) for i in range(500))
    r.peer_presence("p1", crowd)
    assert r.online() == []
    # ...a connected peer's list is cut to MAX_PRESENCE_PER_PEER, and goes with the peer.
    p1 = Peer("p1", "Host")
    r.peer_up(p1)
    r.peer_presence("p1", crowd)
    assert len(r.online()) == MAX_PRESENCE_PER_PEER
    r.peer_down(p1, "gone")
    assert r.online() == []
    r.close()


def test_a_new_message_claiming_this_device_as_origin_is_refused(tmp_path):
    r = hub_at(tmp_path, "r")
    forged = written("r", 1, start=50)[0]
    acc = r.receive(forged, "evil", verified=False)
    assert acc.outcome is Outcome.REFUSED and "this device" in acc.reason
    r.close()


async def test_wait_stored_returns_once_committed(tmp_path):
    r = hub_at(tmp_path, "r")
    accepted = [r.receive(m, "x", verified=True) for m in written("x", 50, spread_ms=10)]
    await r.wait_stored(tuple(a.message.id for a in accepted))
    assert all(r.store.get(a.message.id) is not None for a in accepted)
    r.close()
    memory = Hub("m")  # no store: accepted means held in memory, at once
    acc = memory.receive(written("y", 1)[0], "y", verified=True)
    await memory.wait_stored((acc.message.id,))
    assert memory.store.get(acc.message.id) is not None


def test_the_plain_quota_charge_keeps_the_general_one_s_counts_order_and_refusals() -> None:
    """``Quotas.charge`` has a short path for a verified message of a known origin in a known
    channel (nearly all of a catch-up page). Against a plain model of the budgets (a counter
    per key, least recently used first), with caps small enough to refuse: the same verdicts,
    the same counts in the same order, the same eviction."""
    import random
    from collections import OrderedDict

    from fletchat.acceptance import DAY_MS, MINUTE_MS, QuotaLimits, Quotas

    rnd = random.Random(7)
    limits = QuotaLimits(per_minute=6, bytes_per_minute=120, per_day=40)
    quotas, model = Quotas(limits, tracked=10), OrderedDict()
    for i in range(600):
        origin = rnd.choice(["o1", "o2", "o3"])
        text = "x" * rnd.randint(1, 40)
        stamp_ms = 1_760_000_000_000 + rnd.randint(0, 5) * MINUTE_MS + rnd.randint(0, 2) * DAY_MS
        msg = Message(f"id{i}", "chat", "Ann", origin, text, 1_760_000_000.0, "general",
                      "", 1)
        keys = [(("m", origin, stamp_ms // MINUTE_MS), 1, limits.per_minute),
                (("b", origin, stamp_ms // MINUTE_MS), len(text), limits.bytes_per_minute),
                (("d", origin, stamp_ms // DAY_MS), 1, limits.per_day)]
        fits = all(model.get(k, 0) + amount <= cap for k, amount, cap in keys)
        if fits:
            for k, amount, _ in keys:
                model[k] = model.get(k, 0) + amount
                model.move_to_end(k)
            while len(model) > 10:
                model.popitem(last=False)
        got = quotas.charge(msg, stamp_ms, "peer", 0, flags=(True, False, False))
        assert (got == "") == fits, (i, got)
        assert got == "" or got.startswith("quota: " + origin)
        assert list(quotas._counts.items()) == list(model.items())
