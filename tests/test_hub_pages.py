"""``Hub.receive_page`` (a catch-up page in one pass) against ``Hub.receive`` one by one.

Two hubs in the same state (same stored and queued rows, clock, quotas, blocks) get the same
page: one message by message through ``receive(..., relay=False)``, the other through
``receive_page``. Every verdict (outcome and reason) and everything the hub keeps afterwards
(rows and their proof, catch-up summary, clock, quota counters, seen ids, channels, the events
in order) must be the same: duplicates, refusals, unverified slot claims and their verified
owners, quota overflows, skewed stamps, blocked and own origins, conversation events between
plain messages; on SQLite and in memory; and for random pages.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from fletchat.acceptance import QuotaLimits
from fletchat.clock import HLC, MAX_ADOPT_MS
from fletchat.conversation.fields import ConvFields
from fletchat.events import ChannelsChanged, Outcome
from fletchat.hub import Hub
from fletchat.model import KIND_CHANNEL, KIND_REACTION, Message, new_id
from fletchat.store import Store
from fletchat.trust import Trust

NOW = 1_760_000_000_000  # a fixed wall clock (ms) for both hubs
THUMBS = "\U0001f44d"
LIMITS = QuotaLimits(per_minute=6, bytes_per_minute=400, per_day=40, channels_per_day=2,
                     new_origins_per_peer_minute=9, unverified_per_peer_minute=14)


def chat(origin: str, seq: int, text: str = "hi", *, at: int = NOW, stamp_at: int | None = None,
         channel: str = "general", mid: str | None = None) -> Message:
    """A message as ``origin`` writes it: ``ts`` from ``at``, its stamp from ``stamp_at``."""
    clock = HLC(origin, wall=lambda: at if stamp_at is None else stamp_at)
    return Message(mid or new_id(), "chat", "Xena", origin, text, at / 1000, channel,
                   hlc=clock.now().encode(), seq=seq)


def react(target: Message, origin: str, seq: int) -> Message:
    clock = HLC(origin, wall=lambda: NOW)
    return Message(new_id(), KIND_REACTION, "Rae", origin, "", NOW / 1000, target.channel,
                   hlc=clock.now().encode(), seq=seq,
                   conv=ConvFields(target=target.id, emoji=THUMBS, on=True))


def twin_hubs(tmp_path: Path, kind: str, limits: QuotaLimits = LIMITS):
    """Two hubs alike in every way, each with its list of published events."""
    out = []
    for name in ("one", "page"):
        store = Store.open(tmp_path / f"{name}.db") if kind == "sqlite" else None
        trust = Trust.open(tmp_path / f"{name}-trust", "me")
        hub = Hub("me", store=store, trust=trust, wall=lambda: NOW, quota_limits=limits)
        hub.block("bad")
        events: list = []
        hub.add_listener(events.append)
        out.append((hub, events))
    return out


def both(hubs, msg: Message, verified: bool, *, flush: bool = True) -> None:
    """The same earlier arrival at both hubs (one by one: the state a page then meets)."""
    for hub, _ in hubs:
        hub.receive(msg, "peer", verified=verified, relay=False)
        if flush:
            hub.flush()


def verdicts(accs) -> list[tuple[Outcome, str]]:
    return [(a.outcome, a.reason) for a in accs]


def kept(hub: Hub, events: list, pool: list[Message]) -> dict:
    """Everything the hub keeps that a verdict may have changed."""
    assert hub.flush()
    rows = {}
    for m in pool:
        by_id, slot = hub.store.lookup(m.id, m.origin, m.seq)
        rows[m.id] = ((by_id.msg.text, by_id.verified) if by_id else None,
                      (slot.msg.id, slot.verified) if slot else None)
    return {
        "rows": rows, "summary": hub.summary(), "clock": hub.clock.last,
        "seen": list(hub._seen.items()), "quotas": list(hub._quotas._counts.items()),
        "channels": hub.channels(), "origins": sorted(hub._origins),
        "events": [("msg", e.id) if isinstance(e, Message) else
                   ("channels", e.channels) if isinstance(e, ChannelsChanged) else
                   (type(e).__name__,) for e in events],
    }


def compare(hubs, page: list[tuple[Message, bool]], pool: list[Message]):
    (one, one_events), (paged, paged_events) = hubs
    one_by_one = []
    for m, v in page:  # each judged once the one before it is stored (as in memory)
        one_by_one.append(one.receive(m, "peer", verified=v, relay=False))
        one.flush()
    at_once = paged.receive_page(page, "peer")
    assert verdicts(at_once) == verdicts(one_by_one)
    assert [a.message for a in at_once] == [m for m, _ in page]
    assert kept(paged, paged_events, pool) == kept(one, one_events, pool)
    return one_by_one


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_mixed_page_gets_exactly_the_one_by_one_verdicts(tmp_path, kind) -> None:
    hubs = twin_hubs(tmp_path, kind)
    try:
        # Before the page: a verified row of x, an unverified squatter in x's slot 3 and one
        # in y's slot 1 (stored), and an unverified row still queued for the store.
        x1, squat_x3 = chat("x", 1, "x one"), chat("x", 3, "forged x3")
        squat_y1, queued = chat("y", 1, "forged y1"), chat("z", 1, "z one, unverified")
        squat_w2 = chat("w", 2, "forged w2")
        both(hubs, x1, True)
        for squat in (squat_x3, squat_y1, squat_w2):
            both(hubs, squat, False)
        both(hubs, queued, False, flush=False)
        x2, x3, x4 = (chat("x", s, f"x {s}") for s in (2, 3, 4))
        y1 = chat("y", 1, "real y1")
        in_page_squat, in_page_owner = chat("x", 5, "forged x5"), chat("x", 5, "real x5")
        q = [chat("q", s, f"q {s}") for s in range(1, 10)]  # over 6 a minute
        c = [chat("c", s, f"c {s}", channel=f"room-{s}") for s in range(1, 4)]  # 2 new channels
        big = [chat("b", s, "w" * 150) for s in range(1, 5)]  # over 400 bytes a minute
        page = [
            (x2, True), (x2, True),  # new, then the same again
            (squat_x3, False),  # already here, as well proven
            (x3, True),  # the verified owner of a squatted slot
            (squat_x3, False), (replace(x3, text="other words"), True),  # its id is taken
            (y1, False),  # an unverified claim of a slot an unverified row holds
            (y1, True), (y1, True),  # now verified: takes the slot, then a duplicate
            (queued, True),  # the queued unverified row, now proven
            (replace(squat_w2, text="real w2"), True),  # a verified one takes its id back
            (in_page_squat, False), (in_page_owner, True), (in_page_squat, False),
            (x4, False), (x4, True),  # unverified first, then the proof
            (chat("x", 6, "ahead", at=NOW + 200_000), True),  # ts 200 s ahead: kept
            (chat("x", 7, "far", at=NOW + 400_000), True),  # ts 400 s ahead: refused
            (chat("x", 8, "stamp", stamp_at=NOW + 400_000), True),  # its stamp too far
            (chat("x", 9, "adopt", stamp_at=NOW + MAX_ADOPT_MS + 90_000), True),  # capped
            (chat("x", 10, "epoch", at=1_000), True),
            (replace(chat("x", 11), hlc="", seq=0), True),  # no stamp
            (chat("me", 1, "not mine"), True), (chat("bad", 1, "blocked"), True),
            *((m, True) for m in q), *((m, True) for m in c), *((m, True) for m in big),
            *((chat(f"o{i}", 1, f"new origin {i}"), False) for i in range(7)),
            (react(x2, "r", 1), True),  # a conversation event, its target earlier in the page
            (chat("x", 12, "after the event"), True),
            (replace(chat("c", 4, channel="room-9"), kind=KIND_CHANNEL, text=""), True),
        ]
        pool = [m for m, _ in page] + [x1, squat_x3, squat_y1, squat_w2, queued]
        one_by_one = compare(hubs, page, pool)
        outcomes = {o.outcome for o in one_by_one}
        assert outcomes == {Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.REFUSED}
        reasons = " | ".join(o.reason for o in one_by_one)
        for part in ("already another message", "quota", "new channels", "bytes of text",
                     "new origins", "in the future", "ahead of ours", "before 2020",
                     "no clock stamp", "this device", "blocked", "now verified"):
            assert part in reasons
    finally:
        for hub, _ in hubs:
            hub.close()
            hub.trust.close()


@pytest.mark.parametrize("seed", range(8))
def test_random_pages_get_the_one_by_one_verdicts(tmp_path, seed) -> None:
    rnd = random.Random(seed)
    hubs = twin_hubs(tmp_path, "sqlite" if seed % 2 else "memory")
    try:
        origins = ["x", "y", "q", "me", "bad", *(f"o{i}" for i in range(4))]
        pool: list[Message] = []
        for origin in origins:
            for seq in range(1, 9):
                at = NOW + rnd.choice([0, 0, 0, -61_000, 200_000, 400_000, -NOW + 5])
                pool.append(chat(origin, seq, f"{origin} {seq}", at=at,
                                 channel=rnd.choice(["general", "general", "a", "b", "c"])))
                if rnd.random() < 0.3:  # a squatter of the same slot
                    pool.append(chat(origin, seq, f"{origin} {seq} forged"))
                if rnd.random() < 0.2:  # its id with other words, or in another slot
                    pool.append(replace(pool[-1], text=f"{origin} {seq} changed"))
                    pool.append(replace(pool[-1], seq=seq + 1))
        pool += [react(rnd.choice(pool), f"r{i}", 1) for i in range(5)]
        for msg in rnd.sample(pool, 12):  # some held before: stored, and some only queued
            both(hubs, msg, rnd.random() < 0.5, flush=rnd.random() < 0.7)
        for _ in range(3):
            page = [(rnd.choice(pool), rnd.random() < 0.6) for _ in range(60)]
            compare(hubs, page, pool)
    finally:
        for hub, _ in hubs:
            hub.close()
            hub.trust.close()


class CountingWriter:
    """The hub's store writer, counting its hand-offs."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.calls: list[int] = []

    def submit(self, record) -> int:
        self.calls.append(1)
        return self.writer.submit(record)

    def submit_many(self, records) -> int:
        self.calls.append(len(records))
        return self.writer.submit_many(records)

    def __getattr__(self, name: str):
        return getattr(self.writer, name)


def test_a_page_is_one_hand_off_to_the_writer_and_one_store_query(tmp_path) -> None:
    hub = Hub("me", store=Store.open(tmp_path / "h.db"), wall=lambda: NOW)
    try:
        old = [chat("x", s, f"x {s}") for s in range(1, 41)]
        for m in old[:20]:
            hub.receive(m, "peer", verified=False, relay=False)
        hub.flush()
        hub._writer = counting = CountingWriter(hub._writer)
        queries: list[int] = []
        lookup_many = hub.store.lookup_many
        hub.store.lookup_many = lambda keys: queries.append(len(keys)) or lookup_many(keys)
        hub.store.lookup = lambda *a: pytest.fail("one store query per page, not per message")
        # 20 already stored (unverified: the proof upgrades them), 20 new in slots above them
        accs = hub.receive_page([(m, True) for m in old], "peer")
        assert [a.outcome for a in accs] == [Outcome.DUPLICATE] * 20 + [Outcome.ACCEPTED] * 20
        assert counting.calls == [40]
        assert len(queries) == 1 and 20 <= queries[0] <= 40  # the stored ones, maybe all
        assert hub.flush()
        assert all(hub.store.get(m.id).verified for m in old)
    finally:
        hub.close()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_an_id_is_not_taken_back_into_a_slot_a_verified_message_holds(tmp_path, kind) -> None:
    """A verified message whose id an unverified row holds, claiming a slot another verified
    message holds, used to be accepted (and acknowledged) while the store dropped the unverified
    row and refused it: neither was kept. It is refused for the slot; the row stays."""
    store = Store.open(tmp_path / "h.db") if kind == "sqlite" else None
    hub = Hub("me", store=store, wall=lambda: NOW)
    try:
        holder, squat = chat("x", 2, "verified x2"), chat("x", 1, "forged x1")
        hub.receive(holder, "peer", verified=True, relay=False)
        hub.receive(squat, "peer", verified=False, relay=False)
        hub.flush()
        claim = replace(squat, text="other words", seq=2)
        for acc in (hub.receive(claim, "peer", verified=True, relay=False),
                    *hub.receive_page([(claim, True), (claim, True)], "peer")):
            assert acc.outcome is Outcome.REFUSED
            assert acc.reason == "x seq 2 is already another message here"
        assert hub.flush()
        assert hub.store.get(squat.id).msg.text == "forged x1"
        assert hub.store.get(holder.id).verified
    finally:
        hub.close()


def test_a_pages_signatures_get_the_verdicts_and_book_entries_one_by_one_gives(tmp_path) -> None:
    """``Trust.check_messages`` (a page: keys and blocks looked up once) against
    ``check_message`` for each pair: own, known, unknown and blocked origins, good, forged and
    missing signatures, an id twice."""
    from fletchat.trust import Trust as T

    writer = T.open(tmp_path / "x", "x")
    mine = [T.open(tmp_path / f"me{i}", "me") for i in range(2)]
    for trust in mine:
        trust.store.check("x", writer.identity.public_key, "X")
        trust.block("bad")
    x1, x2, y1, me1, bad1 = (chat("x", 1), chat("x", 2), chat("y", 1), chat("me", 1),
                             chat("bad", 1))
    sx1, sx2 = writer.sigs_for([x1, x2])
    (s_me,) = mine[0].sigs_for([me1])
    pairs = [(x1, sx1), (x2, sx1), (x2, ""), (x2, sx2), (x1, sx1), (y1, sx2), (y1, ""),
             (me1, s_me), (me1, sx1), (bad1, sx1)]
    page = mine[0].check_messages(pairs)
    assert page == [mine[0].check_message(m, s) for m, s in pairs]
    assert [v.value for v in page] == ["verified", "refused", "refused", "verified", "verified",
                                       "unverified", "unverified", "verified", "refused",
                                       "blocked"]
    others = [(m, s) for m, s in pairs if m.origin != "me"]  # the two differ in their own key
    mine[1].check_messages(others)
    ids = [x1.id, x2.id, y1.id, bad1.id]
    assert mine[1].book.get_many(ids) == mine[0].book.get_many(ids)
    assert set(mine[1].book.get_many(ids)) == {x1.id, x2.id, y1.id}
    for trust in (writer, *mine):
        trust.close()


async def test_a_page_that_cannot_be_written_is_never_acknowledged_then_refused(tmp_path) -> None:
    from fletchat.store import StoreFull
    from tests.test_storage_faults import fill_up

    hub = Hub("me", store=Store.open(tmp_path / "history.db"), wall=lambda: NOW)
    try:
        fill_up(hub.store)
        page = [(chat("x", s, "y" * 3900, at=NOW - 600_000 + s * 3_000), True)
                for s in range(1, 41)]
        accepted = hub.receive_page(page, "peer")
        ids = tuple(a.message.id for a in accepted if a.stored)
        assert ids
        with pytest.raises(StoreFull):
            await hub.wait_stored(ids)  # the mesh acknowledges nothing when this raises
        assert hub.store.read_only and hub.store_error
        later = hub.receive_page([(chat("x", s), True) for s in range(41, 44)], "peer")
        assert {a.outcome for a in later} == {Outcome.REFUSED}
        assert all("cannot store" in a.reason for a in later)
    finally:
        hub.close()
