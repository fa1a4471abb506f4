"""Conversation kinds through the hub's one acceptance pipeline, with real SQLite stores and no
network: replies, reactions (toggle, floods), edits and deletes (author only, forged ones refused,
redaction everywhere incl. a late joiner's catch-up), search of the latest text, the wire format
and the store's migration to schema 3."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from fletchat.conversation.fields import ConvFields, Redaction, vouched
from fletchat.conversation.kinds import NOT_AUTHOR
from fletchat.conversation.state import TOO_MANY_REACTIONS
from fletchat.conversation.views import RowChanged
from fletchat.events import Outcome
from fletchat.hub import Hub, HubSession
from fletchat.model import KIND_DELETE, KIND_EDIT, KIND_REACTION, Message, ValidationError, new_id
from fletchat.protocol import (
    ProtocolError,
    ReadFrame,
    TypingFrame,
    decode_frame,
    encode_frame,
    encode_msg,
    message_signing_bytes,
)
from fletchat.store import SCHEMA_VERSION, Store
from tests.timing import eventually_sync

THUMBS, TADA = "\U0001f44d", "\U0001f389"


def make(tmp_path: Path, peer: str, name: str) -> tuple[Hub, HubSession, list]:
    hub = Hub(peer, store=Store.open(tmp_path / f"{peer}.db"))
    events: list = []
    hub.add_listener(events.append)
    session = HubSession(hub, device="headless")
    session.join(name)
    return hub, session, events


def ship(src: Hub, dst: Hub, msg: Message, verified: bool = True, live: bool = True):
    """``msg`` as ``dst`` gets it from ``src`` (the wire's validation included)."""
    wire = decode_frame(encode_msg(msg)).message
    return dst.receive(wire, src.peer_id, verified=verified, relay=live)


def text_in_db(hub: Hub, needle: str) -> bool:
    hub.flush()
    con = sqlite3.connect(hub.store.path)
    try:
        rows = con.execute("SELECT count(*) FROM messages WHERE text LIKE ?",
                           (f"%{needle}%",)).fetchone()[0]
        fts = con.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?",
                          (f'"{needle}"',)).fetchone()[0]
    finally:
        con.close()
    return bool(rows or fts)


@pytest.fixture
def pair(tmp_path: Path):
    a, sa, ea = make(tmp_path, "alice-dev", "Alice")
    b, sb, eb = make(tmp_path, "bob-dev", "Bob")
    yield a, sa, ea, b, sb, eb
    a.close()
    b.close()


def test_reply_to_a_message_the_receiver_does_not_have_shows_its_quote(pair) -> None:
    a, sa, _, b, _, eb = pair
    parent = sa.send("lunch at noon?")
    answer = sa.reply(parent, "or at one", "general")
    assert ship(a, b, answer).outcome is Outcome.ACCEPTED  # parent never sent to b
    row = b.conv.row_state(answer)
    assert row.reply is not None and row.reply.parent_id == parent.id
    assert row.reply.snippet == "lunch at noon?" and row.reply.parent_author == "Alice"
    assert answer.id in {e.id for e in eb if isinstance(e, Message)}  # shown as a row
    assert [m.id for m in b.history("general")][-1] == answer.id


def test_reaction_toggles_and_counts_people(pair) -> None:
    a, sa, _, b, sb, eb = pair
    m = sa.send("ship it")
    ship(a, b, m)
    on = sb.react(m, ":+1:")
    assert ship(b, a, on).outcome is Outcome.ACCEPTED
    row = a.conv.row_state(m, ("alice-dev", "Alice"))
    assert [(r.emoji, r.count, r.who, r.mine) for r in row.reactions] == [
        (THUMBS, 1, ("Bob",), False)]
    off = sb.react(m, THUMBS)  # the same tap again takes it back
    assert off.conv is not None and off.conv.on is False
    ship(b, a, off)
    assert a.conv.row_state(m).reactions == ()
    assert any(isinstance(e, RowChanged) and e.message_id == m.id for e in eb)
    assert [x.id for x in b.history("general")] == [x.id for x in b.history("general")
                                                     if x.kind not in (KIND_REACTION,)]


def test_edit_shows_latest_text_and_search_finds_only_it(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("meet at the libary")
    ship(a, b, m)
    ship(a, b, sa.edit(m, "meet at the library"))
    row = b.conv.row_state(m)
    assert row.text == "meet at the library" and row.edited
    found = b.search("library")
    assert [(x.id, x.kind) for x, _ in found] == [(m.id, "chat")]
    assert b.search("libary") == []  # the old text is no longer what the message says


def test_only_the_author_may_edit_or_delete(pair) -> None:
    a, sa, _, b, sb, _ = pair
    m = sa.send("mine")
    ship(a, b, m)
    with pytest.raises(ValidationError, match="Only the author"):
        sb.edit(m, "yours now")
    with pytest.raises(ValidationError, match="Only the author"):
        sb.delete(m)
    # A forged delete from Bob's device, under Alice's name, signed by Bob's key:
    forged = Message(new_id(), KIND_DELETE, "Alice", "bob-dev", "", m.ts, m.channel,
                     hlc=b.clock.now().encode(), seq=99,
                     conv=ConvFields(target=m.id, target_seq=m.seq))
    acc = ship(b, a, forged)
    assert acc.outcome is Outcome.REFUSED and acc.reason == NOT_AUTHOR
    assert a.find(forged.id) is None  # not stored
    forged_edit = Message(new_id(), KIND_EDIT, "Alice", "bob-dev", "pwned", m.ts, m.channel,
                          hlc=b.clock.now().encode(), seq=100, conv=ConvFields(target=m.id))
    assert ship(b, a, forged_edit).reason == NOT_AUTHOR
    assert a.conv.row_state(m).text == "mine"
    assert text_in_db(a, "mine")  # nothing stored was lost


def test_unverified_delete_cannot_change_a_signed_message(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("signed words")
    ship(a, b, m, verified=True)
    d = sa.delete(m)
    acc = ship(a, b, d, verified=False)
    assert acc.outcome is Outcome.REFUSED and "unverified" in acc.reason
    assert not b.conv.row_state(m).deleted


def test_delete_erases_the_text_from_every_store_and_a_late_joiner(tmp_path: Path, pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("my secret plan")
    for x in a.missing({}, None, 10):  # Alice's join and the message
        ship(a, b, x, live=False)
    e = sa.edit(m, "my secret plan v2")
    ship(a, b, e)
    ship(a, b, sa.delete(m))
    for hub in (a, b):
        eventually_sync(lambda hub=hub: not text_in_db(hub, "secret"), "text erased", 10)
        assert hub.conv.row_state(m).deleted and hub.search("secret") == []
    # Carol joins later: catch-up from Bob hands on stubs vouched for by Alice's delete.
    c, _, _ = make(tmp_path, "carol-dev", "Carol")
    try:
        sent = b.missing({}, None, 100)
        stubs = [x for x in sent if x.conv is not None and x.conv.redacted is not None]
        assert {x.id for x in stubs} == {m.id, e.id} and all(x.text == "" for x in stubs)
        assert all(vouched(decode_frame(encode_msg(x)).message) for x in stubs)
        for x in sent:
            assert ship(b, c, x, live=False).stored
        assert c.conv.row_state(m).deleted and not text_in_db(c, "secret")
        c.flush()
        assert c.summary().get("alice-dev") == a.summary()["alice-dev"]  # no gap left
    finally:
        c.close()


def test_an_unvouched_stub_is_refused_at_the_edge(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("keep me")
    other = sa.send("another")
    d = sa.delete(other)  # a real delete, but of another message
    stub = replace(m, text="", conv=ConvFields(redacted=Redaction(d, "")))
    assert not vouched(stub)  # the delete names another message: this slot is not vouched
    acc = b.receive(decode_frame(encode_msg(stub)).message, a.peer_id, verified=False)
    assert acc.outcome is Outcome.REFUSED and b.find(m.id) is None


def test_delete_that_arrives_before_its_message_erases_it_on_arrival(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("early bird")
    d = sa.delete(m)
    assert ship(a, b, d, live=False).outcome is Outcome.ACCEPTED  # kept, waiting
    assert ship(a, b, m, live=False).stored
    assert b.conv.row_state(m).deleted
    eventually_sync(lambda: not text_in_db(b, "early"), "late original erased", 10)


def test_reaction_flood_is_refused_and_nothing_stored_is_lost(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("react to me")
    ship(a, b, m)
    outcomes = []
    for i in range(40):
        r = Message(new_id(), KIND_REACTION, "Alice", "alice-dev", "", m.ts, m.channel,
                    hlc=a.clock.now().encode(), seq=100 + i,
                    conv=ConvFields(target=m.id, emoji=THUMBS, on=i % 2 == 0))
        outcomes.append(ship(a, b, r))
    refused = [x for x in outcomes if x.outcome is Outcome.REFUSED]
    assert refused and all(x.reason == TOO_MANY_REACTIONS for x in refused)
    assert len(outcomes) - len(refused) == 20  # signals.REACTION_LIMIT
    assert b.conv.row_state(m).text == "react to me"


def test_reaction_flood_from_many_identities_behind_one_address(pair) -> None:
    from fletchat.model import Peer

    a, sa, _, b, _, _ = pair
    m = sa.send("popular")
    ship(a, b, m)
    accepted = 0
    for i in range(100):  # throw-away identities, all connecting from one address
        origin = f"sock-{i}"
        b.peer_up(Peer(origin, f"Sock {i}", host="10.9.9.9"))
        for emoji in (THUMBS, TADA):
            r = Message(new_id(), KIND_REACTION, f"Sock {i}", origin, "", m.ts, m.channel,
                        hlc=a.clock.now().encode(), seq=1 if emoji == THUMBS else 2,
                        conv=ConvFields(target=m.id, emoji=emoji))
            accepted += b.receive(r, origin, verified=False, relay=True).stored
    assert accepted == 60  # conversation.state.ADDRESS_REACTION_LIMIT
    assert sum(x.count for x in b.conv.row_state(m).reactions) == 60


def test_oversized_or_unknown_emoji_is_refused_with_a_clear_error(pair) -> None:
    a, sa, _, b, sb, _ = pair
    m = sa.send("hi")
    ship(a, b, m)
    with pytest.raises(ValidationError, match="too long"):
        sb.react(m, THUMBS * 5000)  # a 10 kB emoji string
    with pytest.raises(ValidationError, match="Unknown reaction"):
        sb.react(m, "x")
    obj = json.loads(encode_msg(m))
    obj["msg"].update(kind="reaction", text="", target=m.id, emoji=THUMBS * 2500)
    with pytest.raises(ProtocolError, match="too long"):
        decode_frame(json.dumps(obj))
    assert b.conv.row_state(m).reactions == ()


def test_signing_bytes_cover_the_conversation_fields(pair) -> None:
    _, sa, _, _, _, _ = pair
    m = sa.send("x")
    r = sa.react(m, THUMBS)
    base = message_signing_bytes(r)
    assert json.loads(base)[-1] == {"emoji": THUMBS, "on": True, "target": m.id}
    flipped = replace(r, conv=replace(r.conv, on=False))
    assert message_signing_bytes(flipped) != base
    assert json.loads(message_signing_bytes(m))[-1] == m.seq  # plain chat: 10 elements


def test_live_frames_round_trip_and_validate() -> None:
    t = TypingFrame("Ann", "general")
    assert decode_frame(encode_frame(t)) == t
    r = ReadFrame("Ann", "general", "0000000003e8.0000.n1")
    assert decode_frame(encode_frame(r)) == r
    bad = json.loads(encode_frame(r))
    bad["upto"] = "yesterday"
    with pytest.raises(ProtocolError, match="read.upto"):
        decode_frame(json.dumps(bad))


def test_typing_and_read_marks_between_sessions_of_one_hub(pair) -> None:
    a, sa, _, _, _, _ = pair
    other = HubSession(a, device="headless")
    other.join("Ann")
    sa.typing("general")
    assert other.typing_names("general") == ["Alice"] and sa.typing_names("general") == []
    m = other.send("hello")
    assert other.typing_names("general") == ["Alice"]  # Ann's message ends only Ann's typing
    sa.mark_read("general", m)
    assert a.conv.seen_by(m) == ["Alice"]
    sa.send("done typing")
    assert other.typing_names("general") == []  # a message ends the typing


def test_read_receipts_can_be_turned_off(pair) -> None:
    a, sa, _, _, _, _ = pair
    other = HubSession(a, device="headless")
    other.join("Ann")
    m = other.send("hello")
    sa.send_read_receipts = False
    sa.mark_read("general", m)
    assert a.conv.seen_by(m) == []


def test_rename_is_a_notice(pair) -> None:
    a, sa, _, b, _, _ = pair
    r = sa.rename("Alicia")
    assert ship(a, b, r).stored
    assert r.display_text == "Alice is now known as Alicia."
    assert sa.name == "Alicia" and any(o.name == "Alicia" for o in a.online())


def test_reach_counts_acks_and_summaries(pair) -> None:
    a, sa, _, _, _, _ = pair
    m = sa.send("how far")
    assert a.reach(m) == (1, 1)
    a.acked("bob-dev", (m.id,))
    assert a.reach(m) == (2, 2)
    a.peer_has("carol-dev", {"alice-dev": m.seq})
    assert a.reach(m) == (3, 3)


def test_store_migrates_from_schema_2_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store.open(path)
    store.close()
    con = sqlite3.connect(path)  # back to a v2 file: drop what v3 (files) and v4 (conversation) added
    con.executescript("DROP INDEX messages_events; ALTER TABLE messages DROP COLUMN conv; "
                      "ALTER TABLE messages DROP COLUMN redacted_by; "
                      "DROP INDEX messages_with_files; ALTER TABLE messages DROP COLUMN files; "
                      "ALTER TABLE messages DROP COLUMN file_names; PRAGMA user_version = 2;")
    con.execute("INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
                "received_at) VALUES ('old1', 'general', 'o', 1, '01a000000000.0000.o', 'chat', "
                "'Ann', 'kept words', 1.0, 1.0)")
    # an old build indexed its rows for search as it stored them (its insert trigger)
    con.execute("INSERT INTO messages_fts (rowid, text) SELECT n, text FROM messages "
                "WHERE id = 'old1'")
    con.commit()
    con.close()
    store = Store.open(path)
    try:
        assert SCHEMA_VERSION == 4
        rec = store.get("old1")
        assert rec is not None and rec.msg.text == "kept words" and rec.msg.conv is None
        assert [h.record.msg.id for h in store.search("kept")] == ["old1"]
    finally:
        store.close()


async def test_the_ui_port_over_a_hub_session(pair) -> None:
    from fletchat.ui.backend import ChatBackend
    from fletchat.ui.hub_backend import HubBackend

    a, sa, _, _, _, _ = pair
    ann = HubSession(a, device="browser")
    ann.join("Ann")
    backend = HubBackend(ann)
    assert isinstance(backend, ChatBackend) and backend.capabilities.conversation
    m = sa.send("port check")
    await backend.react(m, THUMBS)
    assert [(r.emoji, r.mine) for r in backend.row_state(m).reactions] == [(THUMBS, True)]
    with pytest.raises(ValidationError, match="Only the author"):
        await backend.edit(m, "nope")
    answer = await backend.reply(m, "ok", "general")
    assert backend.row_state(answer).reply.parent_id == m.id
    await backend.edit(answer, "ok!")
    assert backend.row_state(answer).text == "ok!"
    backend.set_conversation_prefs(read_receipts=False, typing=False)
    backend.mark_read("general", m)
    backend.typing("general")
    assert backend.seen_by(m) == [] and sa.typing_names("general") == []
    backend.set_conversation_prefs(read_receipts=True, typing=True)
    backend.mark_read("general", m)
    backend.typing("general")
    assert backend.seen_by(m) == ["Ann"] and sa.typing_names("general") == ["Ann"]
    await backend.delete(answer)
    assert backend.row_state(answer).deleted
    assert backend.reach(m) == (1, 1)
    await backend.rename("Annie")
    assert backend.name == "Annie"


def test_an_event_must_stay_in_its_messages_channel(pair) -> None:
    a, sa, _, b, _, _ = pair
    m = sa.send("in general")
    ship(a, b, m)
    moved = sa.react(m, THUMBS)
    acc = ship(a, b, replace(moved, channel="elsewhere"), verified=False)
    assert acc.outcome is Outcome.REFUSED and "channel" in acc.reason
