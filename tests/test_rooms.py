"""Private rooms: sealing with a passphrase-derived key (fletchat/rooms.py) and hubs that share it."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from fletchat.hub import Hub, HubSession, NullTransport
from fletchat.model import MAX_MESSAGE_CHARS, Message, ValidationError, validate_text
from fletchat.rooms import (
    MAX_SEALED_PLAINTEXT_BYTES,
    SEALED_NO_KEY,
    SEALED_PREFIX,
    SEALED_REFUSED,
    RoomError,
    is_sealed,
    open_sealed,
    room_key,
    seal,
)

PASS = "correct horse battery"


@pytest.fixture(scope="module")
def key() -> bytes:
    return room_key("secret", PASS)


def test_key_is_deterministic_per_channel_and_passphrase(key) -> None:
    assert len(key) == 32
    assert room_key("secret", PASS) == key
    assert room_key("other", PASS) != key
    assert room_key("secret", PASS + "!") != key
    with pytest.raises(ValidationError):
        room_key("secret", "short")


def test_seal_then_open(key) -> None:
    sealed = seal(key, "secret", "msg-1", "meet at 6 ☕")
    assert is_sealed(sealed) and sealed.startswith(SEALED_PREFIX)
    assert "meet" not in sealed
    assert validate_text(sealed) == sealed  # travels as ordinary text
    assert open_sealed(key, "secret", "msg-1", sealed) == "meet at 6 ☕"
    assert seal(key, "secret", "msg-1", "meet at 6 ☕") != sealed  # fresh nonce each time


def test_wrong_key_fails(key) -> None:
    sealed = seal(key, "secret", "msg-1", "hi")
    with pytest.raises(RoomError):
        open_sealed(room_key("secret", "not the passphrase"), "secret", "msg-1", sealed)


def test_tampered_ciphertext_fails(key) -> None:
    sealed = seal(key, "secret", "msg-1", "hi there")
    raw = bytearray(base64.b64decode(sealed[len(SEALED_PREFIX):]))
    for i in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        bad = bytearray(raw)
        bad[i] ^= 1
        with pytest.raises(RoomError):
            open_sealed(key, "secret", "msg-1", SEALED_PREFIX + base64.b64encode(bad).decode())
    for junk in ("sealed:v1:not base64!", "sealed:v1:AAAA", "plain text"):
        with pytest.raises(RoomError):
            open_sealed(key, "secret", "msg-1", junk)


def test_associated_data_binds_channel_and_message_id(key) -> None:
    sealed = seal(key, "secret", "msg-1", "hi")
    with pytest.raises(RoomError):  # replayed into another room that shares the key
        open_sealed(key, "other", "msg-1", sealed)
    with pytest.raises(RoomError):  # replayed under another message id
        open_sealed(key, "secret", "msg-2", sealed)


def test_longest_text_still_fits_a_message(key) -> None:
    sealed = seal(key, "secret", "m", "x" * MAX_SEALED_PLAINTEXT_BYTES)
    assert len(sealed) <= MAX_MESSAGE_CHARS and validate_text(sealed) == sealed
    with pytest.raises(ValidationError):
        seal(key, "secret", "m", "x" * (MAX_SEALED_PLAINTEXT_BYTES + 1))


class Wire:
    """Every hub's broadcast reaches every other hub (a LAN in memory)."""

    def __init__(self) -> None:
        self.hubs: list[Hub] = []

    def add(self, peer_id: str) -> Hub:
        wire = self

        class Link(NullTransport):
            def broadcast(self, msg: Message, exclude: str | None = None) -> None:
                for other in wire.hubs:
                    if other.peer_id != peer_id:
                        other.receive(msg, peer_id, verified=True, relay=False)

        hub = Hub(peer_id, transport=Link(None))
        self.hubs.append(hub)
        return hub


def test_hubs_with_the_passphrase_read_each_other_a_third_cannot() -> None:
    wire = Wire()
    a, b, c = (HubSession(wire.add(p)) for p in ("peer-a", "peer-b", "peer-c"))
    for s, name in ((a, "Ann"), (b, "Bob"), (c, "Cid")):
        s.join(name)
    a.create_channel("secret")
    a.set_room_passphrase("secret", PASS)
    b.set_room_passphrase("secret", PASS)
    c.set_room_passphrase("secret", "a wrong guess")
    sent = a.send("the plan", "secret")
    reply = b.send("agreed", "secret")
    assert sent is not None and reply is not None
    for hub in (h.hub for h in (a, b, c)):
        stored = {m.id: m for m in hub.history("secret")}
        assert "secret" in hub.channels()  # everyone sees the room exists...
        assert is_sealed(stored[sent.id].text) and is_sealed(stored[reply.id].text)
        assert "plan" not in stored[sent.id].text  # ...and that its messages are sealed
    on_b = {m.id: m for m in b.hub.history("secret")}
    on_a = {m.id: m for m in a.hub.history("secret")}
    assert b.reveal(on_b[sent.id]) == ("the plan", "open")
    assert a.reveal(on_a[reply.id]) == ("agreed", "open")
    on_c = {m.id: m for m in c.hub.history("secret")}
    assert c.reveal(on_c[sent.id]) == (SEALED_REFUSED, "refused")  # wrong passphrase
    c.forget_room("secret")
    assert c.reveal(on_c[sent.id]) == (SEALED_NO_KEY, "no_key")
    # A forgery in the room (sealed with another key, or a sealed text moved from elsewhere)
    # does not authenticate for those who hold the key.
    forged = Message.chat("Bob", "x", "peer-c", "secret")
    forged = replace(forged, text=seal(room_key("secret", "a wrong guess"), "secret", forged.id, "pay me"))
    moved = replace(on_b[sent.id], id="another-id")
    for m in (forged, moved):
        assert b.reveal(m) == (SEALED_REFUSED, "refused")
    # Ordinary channels are unaffected.
    plain = a.send("hello all")
    assert plain is not None and b.reveal(plain) == ("hello all", "plain")


def test_the_author_edits_in_a_private_room_and_the_new_text_is_sealed_too() -> None:
    from fletchat.conversation.session_part import ROOM_NO_KEY_EDIT, ROOM_PLAIN_EDIT

    wire = Wire()
    a, b, c = (HubSession(wire.add(p)) for p in ("peer-a", "peer-b", "peer-c"))
    for s, name in ((a, "Ann"), (b, "Bob"), (c, "Cid")):
        s.join(name)
    a.create_channel("secret")
    clear = a.send("written before the passphrase", "secret")
    a.set_room_passphrase("secret", PASS)
    b.set_room_passphrase("secret", PASS)
    c.set_room_passphrase("secret", "a wrong guess")
    sent = a.send("the plan", "secret")
    assert sent is not None and clear is not None
    edit = a.edit(sent, "the new plan")
    for s in (a, b, c):
        stored = {m.id: m for m in s.hub.history("secret")}
        held = s.hub.find(edit.id)
        assert held is not None and is_sealed(held[0].text) and "new plan" not in held[0].text
        assert s.hub.conv.row_state(stored[sent.id]).edited
    on_b = {m.id: m for m in b.hub.history("secret")}
    assert b.reveal(on_b[sent.id]) == ("the new plan", "open")
    assert a.reveal(sent) == ("the new plan", "open")
    on_c = {m.id: m for m in c.hub.history("secret")}
    assert c.reveal(on_c[sent.id]) == (SEALED_REFUSED, "refused")  # wrong passphrase
    # The edit's text is sealed under the edit's own id: it does not open as the message's.
    key = room_key("secret", PASS)
    with pytest.raises(RoomError):
        open_sealed(key, "secret", sent.id, edit.text)
    # A second edit wins, and only the author may edit at all.
    a.edit(sent, "the newest plan")
    assert b.reveal(on_b[sent.id]) == ("the newest plan", "open")
    with pytest.raises(ValidationError, match="Only the author"):
        b.edit(on_b[sent.id], "mine now")
    # Without the passphrase the author cannot edit (the text would leave in the clear), nor
    # edit a message of the room that was never sealed while holding the key.
    with pytest.raises(ValidationError, match=ROOM_PLAIN_EDIT[:20]):
        a.edit(clear, "still in the clear?")
    a.forget_room("secret")
    with pytest.raises(ValidationError, match=ROOM_NO_KEY_EDIT[:20]):
        a.edit(sent, "leaked?")
    assert not any("leaked" in m.text or "clear?" in m.text
                   for s in (a, b, c) for m in s.hub.history("secret"))
