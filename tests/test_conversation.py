"""Conversation kinds: edge validation, the author-only rule, and the row reducer's invariants
(any order, duplicates, edits/deletes before their original, forged edits/deletes, floods)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fletchat.conversation.emoji import PICKER, QUICK_REACTIONS
from fletchat.conversation.kinds import (
    MAX_SNIPPET_CHARS,
    NOT_AUTHOR,
    Delete,
    Edit,
    Reaction,
    ReplyRef,
    check_author,
    conv_signing_bytes,
    event_from_dict,
    event_to_dict,
    make_snippet,
    may_modify,
    read_signing_bytes,
    validate_emoji,
    vouches_for,
)
from fletchat.conversation.reducer import (
    DELETED_TEXT,
    MAX_REACTORS_PER_MESSAGE,
    PendingEvents,
    reduce_row,
    toggle,
)
from fletchat.model import Message, ValidationError

ALICE, BOB, MALLORY = "alice-dev", "bob-dev", "mallory-dev"
THUMBS, HEART = QUICK_REACTIONS[0], QUICK_REACTIONS[1]


def stamp(ms: int, node: str = "n1") -> str:
    return f"{ms:012x}.0000.{node}"


ORIGINAL = Message("m1", "chat", "Alice", ALICE, "hello wrold", 1.0e9, "general", stamp(1000), 1)


def edit(eid: str, ms: int, text: str, origin: str = ALICE) -> Edit:
    return Edit(eid, origin, "Alice", "m1", stamp(ms), text=text)


def delete(eid: str, ms: int, origin: str = ALICE) -> Delete:
    return Delete(eid, origin, "Alice", "m1", stamp(ms))


def react(eid: str, ms: int, origin: str, emoji: str = THUMBS, on: bool = True,
          name: str = "") -> Reaction:
    return Reaction(eid, origin, name or origin.split("-")[0].title(), "m1", stamp(ms),
                    emoji=emoji, on=on)


# ---- edge validation -------------------------------------------------------------------------

GOOD = {"id": "e1", "origin": ALICE, "author": "Alice", "target": "m1", "hlc": stamp(2000)}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("nope", "Event must be an object."),
        (GOOD | {"kind": "poke"}, "Unknown event kind."),
        (GOOD | {"kind": "reaction", "emoji": "\U0001f44d" * 5000}, "Reaction is too long"),
        (GOOD | {"kind": "reaction", "emoji": "x"}, "Unknown reaction"),
        (GOOD | {"kind": "reaction", "emoji": 5}, "Reaction must be text."),
        (GOOD | {"kind": "reaction", "emoji": THUMBS, "on": "yes"}, "must be true or false"),
        (GOOD | {"kind": "edit", "text": "   "}, "An edit cannot empty a message"),
        (GOOD | {"kind": "edit", "text": "x" * 4001}, "Message is too long"),
        (GOOD | {"kind": "edit", "text": " padded "}, "Invalid edit text."),
        (GOOD | {"kind": "edit", "text": "bell\x07"}, "control characters"),
        (GOOD | {"kind": "delete", "target": "has space"}, "Invalid target id."),
        (GOOD | {"kind": "delete", "hlc": "yesterday"}, "Invalid clock stamp."),
        (GOOD | {"kind": "delete", "author": ""}, "Name cannot be blank"),
        (GOOD | {"kind": "delete", "origin": "x" * 65}, "Invalid origin."),
    ],
)
def test_bad_events_are_refused_with_a_clear_error(data: object, error: str) -> None:
    with pytest.raises(ValidationError, match=error.replace("(", r"\(")):
        event_from_dict(data)


def test_a_10kb_emoji_string_is_refused_by_length_before_lookup() -> None:
    with pytest.raises(ValidationError, match="too long"):
        validate_emoji("\U0001f600" * 2500)  # 10 kB of UTF-8


def test_every_picker_emoji_is_a_valid_reaction() -> None:
    for e in PICKER:
        assert validate_emoji(e) == e


@pytest.mark.parametrize(
    "event",
    [react("r1", 2000, BOB, on=False), edit("e1", 2000, "fixed"), delete("d1", 2000)],
)
def test_events_round_trip(event: Reaction | Edit | Delete) -> None:
    assert event_from_dict(event_to_dict(event)) == event


def test_delete_carries_its_slots_and_vouches_only_for_them() -> None:
    d = Delete("d9", ALICE, "Alice", "m1", stamp(5), target_seq=1, erases=(4, 7))
    assert event_from_dict(event_to_dict(d)) == d
    assert vouches_for(d, ALICE, "m1", 1)
    assert vouches_for(d, ALICE, "e-any", 7)  # an erased edit's slot
    assert not vouches_for(d, ALICE, "m1", 2)  # the wrong slot for the target
    assert not vouches_for(d, ALICE, "e-any", 5)
    assert not vouches_for(d, MALLORY, "m1", 1)  # another origin's slot


@pytest.mark.parametrize(
    ("extra", "error"),
    [({"target_seq": -1}, "Invalid target sequence"), ({"target_seq": True}, "Invalid target"),
     ({"erases": list(range(1, 100))}, "at most 64"), ({"erases": [0]}, "Invalid erased"),
     ({"erases": "1"}, "at most")],
)
def test_bad_delete_slots_are_refused(extra: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        event_from_dict(GOOD | {"kind": "delete"} | extra)


def test_reply_keeps_a_one_line_snippet_that_survives_without_the_parent() -> None:
    parent = Message("p1", "chat", "Ada", ALICE, "line one\n\nline   two " + "z" * 300, 1.0, "general")
    ref = ReplyRef.to(parent)
    assert ref.parent_id == "p1" and ref.parent_author == "Ada"
    assert ref.snippet.startswith("line one line two z") and ref.snippet.endswith("\u2026")
    assert len(ref.snippet) == MAX_SNIPPET_CHARS
    # what a receiver without the parent gets is enough to show the quote
    assert ReplyRef.from_dict(ref.to_dict()) == ref


@pytest.mark.parametrize(
    "data",
    [
        {"parent": "p1", "parent_author": "Ada", "quote": "q" * (MAX_SNIPPET_CHARS + 1)},
        {"parent": "p1", "parent_author": "Ada", "quote": "two\nlines"},
        {"parent": "bad id", "parent_author": "Ada", "quote": ""},
        {"parent": "p1", "parent_author": "", "quote": ""},
        ["p1"],
    ],
)
def test_bad_reply_refs_are_refused(data: object) -> None:
    with pytest.raises(ValidationError):
        ReplyRef.from_dict(data)


def test_snippet_short_text_is_kept_whole() -> None:
    assert make_snippet("  hi   there ") == "hi there"


# ---- the author-only rule ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("original", "signer", "allowed"),
    [
        ((ALICE, "Alice"), (ALICE, "Alice"), True),
        ((ALICE, "Alice"), (MALLORY, "Alice"), False),  # the name is not an identity
        ((ALICE, "Alice"), (ALICE, "Bob"), False),  # another person on the same host
        (("", "Alice"), (MALLORY, "Alice"), False),
        (("", "Alice"), ("", "Alice"), False),  # no origin: nobody can prove authorship
    ],
)
def test_check_author(original: tuple[str, str], signer: tuple[str, str], allowed: bool) -> None:
    if allowed:
        check_author(original[0], original[1], signer[0], signer[1])
    else:
        with pytest.raises(ValidationError, match="Only the author"):
            check_author(original[0], original[1], signer[0], signer[1])


def test_may_modify() -> None:
    assert may_modify(edit("e", 2, "x"), ORIGINAL)
    assert not may_modify(edit("e", 2, "x", origin=MALLORY), ORIGINAL)
    assert not may_modify(delete("d", 2, origin=MALLORY), ORIGINAL)
    assert may_modify(react("r", 2, MALLORY), ORIGINAL)  # anyone may react
    same_host = Edit("h", ALICE, "Bob", "m1", stamp(2), text="x")  # Bob's tab on Alice's host
    assert not may_modify(same_host, ORIGINAL)
    other = Edit("e", ALICE, "Alice", "m2", stamp(2), text="x")
    assert not may_modify(other, ORIGINAL)


# ---- the reducer ------------------------------------------------------------------------------

CASES = [
    # (name, events, text, edited, deleted)
    ("nothing", [], "hello wrold", False, False),
    ("one edit", [edit("e1", 2000, "hello world")], "hello world", True, False),
    ("latest edit wins", [edit("e2", 3000, "v2"), edit("e1", 2000, "v1")], "v2", True, False),
    ("delete wins over a later edit", [delete("d1", 2000), edit("e1", 3000, "back")], "", False,
     True),
    ("forged edit ignored", [edit("x1", 2000, "pwned", origin=MALLORY)], "hello wrold", False,
     False),
    ("forged delete ignored", [delete("x2", 2000, origin=MALLORY)], "hello wrold", False, False),
    ("forged mixed with real", [edit("x1", 9000, "pwned", MALLORY), edit("e1", 2000, "real")],
     "real", True, False),
    ("duplicates", [edit("e1", 2000, "v1")] * 5, "v1", True, False),
]


@pytest.mark.parametrize(("name", "events", "text", "edited", "deleted"), CASES,
                         ids=[c[0] for c in CASES])
def test_reducer_table(name: str, events: list, text: str, edited: bool, deleted: bool) -> None:
    for order in itertools.islice(itertools.permutations(events), 24):
        row = reduce_row(ORIGINAL, order)
        assert (row.text, row.edited, row.deleted) == (text, edited, deleted), order
    row = reduce_row(ORIGINAL, events)
    assert row.shown_text == (DELETED_TEXT if deleted else text)
    assert row.search_text == ("" if deleted else text)


def test_forged_events_are_reported_with_a_reason() -> None:
    row = reduce_row(ORIGINAL, [edit("x1", 2000, "pwned", MALLORY), delete("x2", 2100, MALLORY)])
    assert dict(row.refused) == {
        "x1": NOT_AUTHOR,
        "x2": NOT_AUTHOR,
    }


def test_another_person_on_the_authors_host_cannot_edit_or_delete() -> None:
    row = reduce_row(ORIGINAL, [Edit("h1", ALICE, "Bob", "m1", stamp(2000), text="x"),
                                Delete("h2", ALICE, "Bob", "m1", stamp(2100))])
    assert (row.text, row.edited, row.deleted) == ("hello wrold", False, False)
    assert len(row.refused) == 2


def test_two_people_on_one_host_react_separately() -> None:
    row = reduce_row(ORIGINAL, [react("a", 1, BOB, name="Bob"), react("b", 2, BOB, name="Cy")])
    assert [(s.count, s.who) for s in row.reactions] == [(2, ("Bob", "Cy"))]


def test_events_about_another_message_do_not_apply() -> None:
    stray = Edit("s1", ALICE, "Alice", "m2", stamp(2000), text="elsewhere")
    row = reduce_row(ORIGINAL, [stray])
    assert row.text == "hello wrold" and row.refused == (("s1", "not about this message"),)


def test_a_message_without_origin_cannot_be_edited_by_anyone() -> None:
    anon = Message("m1", "chat", "Alice", "", "hi", 1.0, "general", stamp(1))
    assert reduce_row(anon, [Edit("e", "", "Alice", "m1", stamp(2), text="x")]).edited is False


def test_reactions_count_toggle_and_name_who() -> None:
    events = [
        react("r1", 2000, BOB),
        react("r2", 2100, MALLORY),
        react("r3", 2200, BOB, emoji=HEART),
        react("r4", 2300, MALLORY, on=False),  # Mallory took the thumbs back
        react("r5", 2400, ALICE, emoji=HEART),
    ]
    for order in itertools.permutations(events):
        row = reduce_row(ORIGINAL, order, me=(ALICE, "Alice"))
        got = [(s.emoji, s.count, s.who, s.mine) for s in row.reactions]
        assert got == [(HEART, 2, ("Alice", "Bob"), True), (THUMBS, 1, ("Bob",), False)]
    assert row.reactions[0].label == f"{HEART} 2: Alice, Bob"
    assert toggle(row, HEART) is False  # tapping my own reaction takes it back
    assert toggle(row, THUMBS) is True


def test_reaction_toggled_back_on_counts_again() -> None:
    row = reduce_row(ORIGINAL, [react("a", 1, BOB), react("b", 2, BOB, on=False),
                                react("c", 3, BOB)])
    assert [(s.emoji, s.count) for s in row.reactions] == [(THUMBS, 1)]


def test_a_deleted_message_shows_no_reactions_and_no_text() -> None:
    row = reduce_row(ORIGINAL, [react("r", 2000, BOB), delete("d", 3000)])
    assert row.deleted and row.reactions == () and row.text == ""


def test_reactor_flood_cannot_push_out_people_already_there() -> None:
    early = [react(f"e{i}", 1000 + i, f"early-{i}", name=f"Early-{i}") for i in range(10)]
    flood = [react(f"f{i}", 5000 + i, f"sock-{i}") for i in range(MAX_REACTORS_PER_MESSAGE * 2)]
    row = reduce_row(ORIGINAL, flood + early)
    (summary,) = row.reactions
    assert summary.count == MAX_REACTORS_PER_MESSAGE
    assert {f"Early-{i}" for i in range(10)} <= set(summary.who)


def test_one_person_counts_once_per_emoji_however_often_they_send_it() -> None:
    row = reduce_row(ORIGINAL, [react(f"r{i}", 2000 + i, MALLORY) for i in range(500)])
    assert [(s.emoji, s.count) for s in row.reactions] == [(THUMBS, 1)]


EVENT = st.one_of(
    st.builds(edit, st.sampled_from(["e1", "e2", "e3"]), st.integers(1001, 1005),
              st.sampled_from(["a", "b"]), st.sampled_from([ALICE, MALLORY])),
    st.builds(delete, st.sampled_from(["d1", "d2"]), st.integers(1001, 1005),
              st.sampled_from([ALICE, MALLORY])),
    st.builds(react, st.sampled_from(["r1", "r2", "r3", "r4"]), st.integers(1001, 1005),
              st.sampled_from([ALICE, BOB, MALLORY]), st.sampled_from([THUMBS, HEART]),
              st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENT, max_size=12), st.randoms(use_true_random=False))
def test_reducer_is_order_and_duplicate_independent(events: list, rnd) -> None:
    # Event ids are unique per content in a real mesh (signed): keep the first per id.
    uniq = list({e.id: e for e in reversed(events)}.values())
    shuffled = uniq + uniq[: len(uniq) // 2]
    rnd.shuffle(shuffled)
    a, b = reduce_row(ORIGINAL, uniq), reduce_row(ORIGINAL, shuffled)
    assert (a.text, a.edited, a.deleted, a.reactions) == (b.text, b.edited, b.deleted, b.reactions)
    if any(isinstance(e, Delete) and e.origin == ALICE for e in uniq):
        assert a.deleted and a.text == ""
    if not any(e.origin == ALICE and not isinstance(e, Reaction) for e in uniq):
        assert a.text == ORIGINAL.text  # nothing Mallory sends changes the text


# ---- events that arrive before their original -------------------------------------------------

def test_edit_and_delete_before_the_original_apply_when_it_arrives() -> None:
    pending = PendingEvents()
    assert pending.add(edit("e1", 2000, "early edit")) == ""
    assert pending.add(edit("e1", 2000, "early edit")) == ""  # duplicate: kept once
    assert pending.add(delete("d1", 3000)) == ""
    assert len(pending) == 2
    row = reduce_row(ORIGINAL, pending.take("m1"))
    assert row.deleted and len(pending) == 0
    assert pending.take("m1") == ()


def test_pending_flood_from_one_origin_is_bounded_and_does_not_block_others() -> None:
    pending = PendingEvents(per_origin=5, total=8)
    for i in range(5):
        assert pending.add(Delete(f"d{i}", MALLORY, "M", f"t{i}", stamp(i))) == ""
    assert "from this peer" in pending.add(Delete("d9", MALLORY, "M", "t9", stamp(9)))
    for i in range(3):
        assert pending.add(Delete(f"b{i}", BOB, "B", f"u{i}", stamp(i))) == ""
    assert "too many events" in pending.add(Delete("b9", BOB, "B", "u9", stamp(9)))
    assert len(pending) == 8
    assert [e.id for e in pending.take("t0")] == ["d0"]
    assert pending.add(Delete("b9", BOB, "B", "u9", stamp(9))) == ""  # room again


# ---- canonical signing bytes -------------------------------------------------------------------

WIRE = {"id": "r1", "kind": "reaction", "author": "Bob", "origin": BOB, "text": "", "ts": 1.5,
        "channel": "general", "hlc": stamp(7), "seq": 3, "target": "m1", "emoji": THUMBS,
        "on": True}


def test_signing_bytes_are_canonical_and_cover_every_field() -> None:
    base = conv_signing_bytes(WIRE)
    assert base.startswith(b'["fletchat-conv-v1","r1","reaction","Bob",')
    assert conv_signing_bytes(dict(reversed(list(WIRE.items())))) == base  # key order is free
    assert conv_signing_bytes(WIRE | {"sig": "x", "unknown": 1}) == base  # not covered
    for key, value in [("id", "r2"), ("author", "Bo"), ("origin", "o"), ("ts", 1.6),
                       ("channel", "x"), ("hlc", stamp(8)), ("seq", 4), ("target", "m2"),
                       ("emoji", HEART), ("on", False)]:
        assert conv_signing_bytes(WIRE | {key: value}) != base, key


def test_reply_and_delete_fields_are_signed() -> None:
    reply = {"id": "c1", "kind": "chat", "author": "Bob", "origin": BOB, "text": "yes", "ts": 1,
             "reply": {"parent": "m1", "parent_author": "Alice", "quote": "hello"}}
    other = reply | {"reply": reply["reply"] | {"parent": "m9"}}
    assert conv_signing_bytes(reply) != conv_signing_bytes(other)
    dele = {"id": "d1", "kind": "delete", "author": "Alice", "origin": ALICE, "text": "", "ts": 1,
            "target": "m1", "target_seq": 1, "erases": [4]}
    assert conv_signing_bytes(dele) != conv_signing_bytes(dele | {"erases": [4, 5]})
    assert read_signing_bytes(BOB, "Bob", "general", stamp(1), 2.0) == (
        f'["fletchat-read-v1","{BOB}","Bob","general","{stamp(1)}",2.0]'.encode())


def test_the_signing_example_in_the_draft_is_what_the_code_signs() -> None:
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "conversation.md").read_text("utf-8")
    example = next(line for line in doc.splitlines() if line.startswith('["fletchat-conv-v1","r1"'))
    wire = {"id": "r1", "kind": "reaction", "author": "Bob", "origin": "bob-dev", "text": "",
            "ts": 1.5, "channel": "general", "hlc": stamp(1000, "n1"), "seq": 3, "target": "m1",
            "emoji": THUMBS, "on": True}
    assert conv_signing_bytes(wire).decode() == example
