"""Red-team findings against the conversation features (edits, deletes, reactions, typing, read
marks): each test failed on the code before its fix. Real SQLite stores, the hub's one acceptance
pipeline, the wire's validation (``ship``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fletchat.acceptance import QuotaLimits
from fletchat.conversation.fields import ConvFields
from fletchat.events import Outcome
from fletchat.hub import Hub, HubSession
from fletchat.model import KIND_DELETE, KIND_EDIT, KIND_REACTION, Message, Peer, new_id
from fletchat.store import Store
from tests import test_conversation_wire
from tests.test_conversation_wire import THUMBS, ship, text_in_db
from tests.timing import eventually_sync, never_within_sync

pair = test_conversation_wire.pair  # two hubs (Alice's and Bob's devices) and their events


def forged(kind: str, hub: Hub, target: Message, seq: int, text: str = "") -> Message:
    """An edit or delete claiming ``target``'s author (origin and name), written by someone else."""
    conv = (ConvFields(target=target.id, target_seq=target.seq) if kind == KIND_DELETE
            else ConvFields(target=target.id))
    return Message(new_id(), kind, target.author, target.origin, text, target.ts, target.channel,
                   hlc=hub.clock.now().encode(), seq=seq, conv=conv)


@pytest.mark.parametrize("kind", [KIND_DELETE, KIND_EDIT])
def test_an_unverified_early_event_never_changes_the_verified_message_it_waited_for(
        pair, tmp_path: Path, kind: str) -> None:
    """Mallory (a late joiner's first contact) hands Bob an unsigned delete or edit claiming
    Alice, before Bob has Alice's message; Alice's signed message then arrives. It used to be
    erased (or rewritten) on arrival, as if the early event had been verified."""
    a, sa, _, b, _, _ = pair
    m = sa.send("the verified original")
    ev = forged(kind, a, m, seq=900, text="words Alice never wrote")
    assert b.receive(ev, "mallory-dev", verified=False, relay=False).outcome is Outcome.ACCEPTED
    assert ship(a, b, m, verified=True, live=False).stored
    row = b.conv.row_state(m)
    assert not row.deleted and row.text == "the verified original" and not row.edited
    never_within_sync(lambda: not text_in_db(b, "verified original"), "text erased", 1.0)
    b.flush()
    b.close()  # after a restart the stored early event still changes nothing
    b2 = Hub("bob-dev", store=Store.open(tmp_path / "bob-dev.db"))
    try:
        row = b2.conv.row_state(m)
        assert not row.deleted and row.text == "the verified original"
    finally:
        b2.close()
    b.close = lambda: None  # the fixture's close: already closed


def test_the_authors_verified_early_delete_still_erases_on_arrival(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("early bird")
    assert ship(a, b, sa.delete(m), verified=True, live=False).outcome is Outcome.ACCEPTED
    assert ship(a, b, m, verified=True, live=False).stored
    assert b.conv.row_state(m).deleted


def test_the_authors_early_delete_applies_once_it_is_verified(pair) -> None:
    """The same delete, first unverified (Alice's key unknown), then verified: it waits, then erases."""
    a, sa, _, b, _, _ = pair
    m = sa.send("gone soon")
    d = sa.delete(m)
    assert ship(a, b, d, verified=False, live=False).outcome is Outcome.ACCEPTED
    assert ship(a, b, m, verified=True, live=False).stored
    assert not b.conv.row_state(m).deleted
    assert ship(a, b, d, verified=True, live=False).reason == "already here; now verified"
    assert b.conv.row_state(m).deleted
    eventually_sync(lambda: not text_in_db(b, "gone soon"), "text erased once verified", 10)


def early_reaction(origin: str, n: int, hub: Hub) -> Message:
    """A reaction to a message nobody has (the target id is made up): it waits forever."""
    return Message(new_id(), KIND_REACTION, f"Sock {origin}", origin, "", time.time(), "general",
                   hlc=hub.clock.now().encode(), seq=n,
                   conv=ConvFields(target=new_id(), emoji=THUMBS))


def test_throw_away_identities_behind_one_address_cannot_fill_the_waiting_events(
        tmp_path: Path) -> None:
    """20 throw-away identities from one address, each under the 256-per-origin cap, used to
    leave 5,120 events waiting (held in memory for good, loaded again at every start)."""
    from fletchat.conversation.orphans import MAX_PENDING_PER_ADDRESS

    b = Hub("bob-dev", store=Store.open(tmp_path / "bob.db"), quota_limits=QuotaLimits.lifted())
    try:
        outcomes = []
        for i in range(20):
            origin = f"sock-{i}"
            b.peer_up(Peer(origin, f"Sock {i}", host="10.9.9.9"))
            outcomes += [b.receive(early_reaction(origin, n, b), origin, verified=True,
                                   relay=False) for n in range(1, 257)]
        kept = [x for x in outcomes if x.outcome is Outcome.ACCEPTED]
        refused = [x for x in outcomes if x.outcome is Outcome.REFUSED]
        assert len(kept) == MAX_PENDING_PER_ADDRESS
        assert refused and all("from this address" in x.reason for x in refused)
        # Another address still gets its share; an honest early event is not locked out.
        b.peer_up(Peer("carol-dev", "Carol", host="10.9.9.10"))
        assert b.receive(early_reaction("carol-dev", 1, b), "carol-dev", verified=True,
                         relay=False).outcome is Outcome.ACCEPTED
    finally:
        b.close()


def test_the_waiting_events_have_a_total_bound_over_every_address() -> None:
    from fletchat.conversation.orphans import Orphans

    o = Orphans(per_origin=2, per_address=4, total=8)
    hub = Hub("x-dev")
    added = 0
    for addr in range(4):
        for origin in range(3):
            for n in range(3):
                ev = early_reaction(f"o{addr}-{origin}", n + 1, hub)
                if not o.refusal(ev.origin, f"10.0.0.{addr}"):
                    o.add(ev, ev.conv.target, f"10.0.0.{addr}")
                    added += 1
    assert added == len(o) == 8
    assert o.refusal("new", "10.0.0.99") == "too many events waiting for messages not received yet"


def test_made_up_readers_from_one_address_never_push_out_real_read_marks(pair) -> None:
    """One peer (or many throw-away identities behind one address) sending ``read`` frames under
    thousands of made-up names used to evict every real "seen by" (oldest first)."""
    from fletchat.protocol import ReadFrame

    a, sa, _, b, _, _ = pair
    m = sa.send("did you read this?")
    ship(a, b, m)
    b.peer_up(Peer("carol-dev", "Carol", host="10.0.0.3"))
    b.conv.peer_signal("carol-dev", ReadFrame("Carol", "general", m.hlc))
    assert b.conv.seen_by(m) == ["Carol"]
    for i in range(10):  # throw-away identities, one address
        peer = f"sock-{i}"
        b.peer_up(Peer(peer, f"Sock {i}", host="10.9.9.9"))
        for n in range(600):
            b.conv.peer_signal(peer, ReadFrame(f"R{n}", "general", m.hlc))
    seen = b.conv.seen_by(m)
    assert "Carol" in seen
    assert len(seen) <= 1 + 1024  # signals.MAX_MARKS_PER_OWNER for the whole address


def test_made_up_typists_from_one_address_never_push_out_real_ones(pair) -> None:
    from fletchat.protocol import TypingFrame

    _, _, _, b, _, _ = pair
    b.peer_up(Peer("carol-dev", "Carol", host="10.0.0.3"))
    b.conv.peer_signal("carol-dev", TypingFrame("Carol", "general"))
    for i in range(10):
        peer = f"sock-{i}"
        b.peer_up(Peer(peer, f"Sock {i}", host="10.9.9.9"))
        for n in range(100):
            b.conv.peer_signal(peer, TypingFrame(f"T{n}", "general"))
    names = b.conv.typing_names("general")
    assert "Carol" in names and len(names) <= 1 + 64  # signals.MAX_TYPING_PER_OWNER


def test_catch_up_cannot_pile_reactions_onto_one_message(pair, tmp_path: Path) -> None:
    """Catch-up is not rate-limited like live reactions (only the per-origin quotas hold): 400
    throw-away identities reacting to one message and one of them toggling 500 times used to
    be held in memory event by event, for good."""
    from fletchat.conversation.held import TOO_MANY_REACTORS
    from fletchat.conversation.reducer import MAX_REACTORS_PER_MESSAGE

    a, sa, _, _, _, _ = pair
    b = Hub("dora-dev", store=Store.open(tmp_path / "dora.db"), quota_limits=QuotaLimits.lifted())
    try:
        m = sa.send("pile on")
        assert ship(a, b, m, live=False).stored

        def react(origin: str, seq: int, on: bool = True) -> Message:
            return Message(new_id(), KIND_REACTION, "Sock", origin, "", m.ts, m.channel,
                           hlc=b.clock.now().encode(), seq=seq,
                           conv=ConvFields(target=m.id, emoji=THUMBS, on=on))

        outcomes = [b.receive(react(f"sock-{i}", 1), f"sock-{i}", verified=True, relay=False)
                    for i in range(400)]
        kept = [x for x in outcomes if x.outcome is Outcome.ACCEPTED]
        refused = [x for x in outcomes if x.outcome is Outcome.REFUSED]
        assert len(kept) == MAX_REACTORS_PER_MESSAGE
        assert refused and all(x.reason == TOO_MANY_REACTORS for x in refused)
        for n in range(500):  # one of them changes their mind, again and again
            assert b.receive(react("sock-0", 2 + n, on=n % 2 == 1), "sock-0", verified=True,
                             relay=False).stored
        assert len(b.conv.events_for(m.id)) == MAX_REACTORS_PER_MESSAGE  # latest per person
        row = b.conv.row_state(m)
        assert row.reactions[0].count == MAX_REACTORS_PER_MESSAGE  # sock-0's last one is "on"
        assert row.text == "pile on"
    finally:
        b.close()


def test_a_tab_cannot_rename_itself_into_someone_elses_name_and_delete_their_words() -> None:
    """On a host a person is (host, name): a tab that renamed itself "Alice" used to be Alice,
    and its delete (signed by the host) erased her message in every store on the LAN."""
    from fletchat.model import ValidationError

    host = Hub("host-dev")
    alice = HubSession(host)
    alice.join("Alice")
    m = alice.send("alice's words")
    mallory = HubSession(host)
    mallory.join("Mallory")
    for name in ("Alice", "alice"):
        with pytest.raises(ValidationError, match="already someone's name"):
            mallory.rename(name)
    with pytest.raises(ValidationError, match="Only the author"):
        mallory.delete(m)
    assert not host.conv.row_state(m).deleted
    assert mallory.rename("Mal").author == "Mal"  # a free name is fine


def test_a_reply_cannot_put_words_in_the_mouth_of_the_person_it_answers(pair) -> None:
    """A reply carries its own quote and the parent's author (for receivers that lack the
    parent): a forged one used to show as Alice saying what she never said."""
    from fletchat.conversation.kinds import ReplyRef

    a, sa, _, b, _, _ = pair
    m = sa.send("I like cats")
    ship(a, b, m)
    fake = ReplyRef(m.id, "Carol", "I hate cats")
    r = Message(new_id(), "chat", "Mallory", "mallory-dev", "so you say", m.ts, m.channel,
                hlc=b.clock.now().encode(), seq=1, conv=ConvFields(reply=fake))
    assert b.receive(r, "mallory-dev", verified=True).stored
    quote = b.conv.row_state(r).reply
    assert (quote.parent_author, quote.snippet) == ("Alice", "I like cats")
    ship(a, b, sa.edit(m, "I like cats a lot"))
    assert b.conv.row_state(r).reply.snippet == "I like cats a lot"  # the latest text
    # Without the parent here, the carried quote is all there is (and shows).
    lone = Message(new_id(), "chat", "Mallory", "mallory-dev", "hm", m.ts, m.channel,
                   hlc=b.clock.now().encode(), seq=2,
                   conv=ConvFields(reply=ReplyRef(new_id(), "Carol", "something")))
    assert b.receive(lone, "mallory-dev", verified=True).stored
    assert b.conv.row_state(lone).reply.snippet == "something"
