"""A peer without the conversation features (a protocol-2 build from before issue 14) meets
conversation messages: what docs/protocol.md ("Peers without the conversation features") says it
does, checked frame by frame on the sans-I/O connection.

The old build is this build with its tables cut back to what it had: the four message kinds
``chat``, ``join``, ``leave``, ``channel`` and no ``typing``/``read`` frames (its ``Message.from_dict``
refused any other kind with "Unknown message kind.", and ``decode_frame`` any other type). Its
signing bytes had no conversation element, so a reply reaches it as a plain chat message whose
signature does not match. Nothing of it becomes a chat row there: the frame is refused whole.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from fletchat import model, protocol
from fletchat.conversation.fields import ConvFields
from fletchat.conversation.kinds import ReplyRef
from fletchat.model import KIND_DELETE, KIND_EDIT, KIND_REACTION, KIND_RENAME, Message
from fletchat.peer import connection
from fletchat.peer.connection import Closed, Messages, State
from fletchat.protocol import ReadFrame, TypingFrame, encode_frame, encode_msg, encode_sync
from tests.test_peer_connection import NOW, opened, stamped

OLD_KINDS = ("chat", "join", "leave", "channel")


@pytest.fixture
def old_build(monkeypatch):
    """This process's edge as the pre-conversation build had it: its tables, and a signature
    check on every message (no connection vouched for its writer's messages then)."""
    monkeypatch.setattr(model, "MESSAGE_KINDS", OLD_KINDS)
    decoders = {k: v for k, v in protocol._DECODERS.items() if k not in ("typing", "read")}
    monkeypatch.setattr(protocol, "_DECODERS", decoders)
    checks_all = connection.check_signatures
    monkeypatch.setattr(connection, "check_signatures",
                        lambda trust, event, sender=None: checks_all(trust, event))


def conversation_events(origin: str, target: Message) -> list[Message]:
    base = stamped(origin, "x", 10)
    return [
        replace(base, id="r1", kind=KIND_REACTION, text="",
                conv=ConvFields(target=target.id, emoji="\U0001f44d", on=True)),
        replace(base, id="e1", kind=KIND_EDIT, text="hello again", seq=11,
                conv=ConvFields(target=target.id)),
        replace(base, id="d1", kind=KIND_DELETE, text="", seq=12,
                conv=ConvFields(target=target.id, target_seq=target.seq)),
        replace(base, id="n1", kind=KIND_RENAME, text="", seq=13, conv=ConvFields(was="B")),
    ]


@pytest.mark.parametrize("index", range(4), ids=["reaction", "edit", "delete", "rename"])
def test_an_old_peer_closes_on_a_conversation_kind_and_shows_nothing(tmp_path, old_build, index):
    _, b, server, _ = opened(tmp_path)
    target = stamped("b", "hello", 1)
    event = conversation_events("b", target)[index]
    (closed,) = server.receive_text(encode_msg(event, b.trust.sig_for(event)), NOW + 2)
    assert isinstance(closed, Closed) and closed.code == 1002
    assert "Unknown message kind." in closed.reason
    assert server.state is State.CLOSED


def test_an_old_peer_refuses_a_whole_catch_up_batch_that_holds_one(tmp_path, old_build):
    server = opened(tmp_path)[2]
    chat = stamped("b", "hello", 1)
    (reaction,) = conversation_events("b", chat)[:1]
    events = server.receive_text(encode_sync([chat, reaction])[0], NOW + 2)
    assert not any(isinstance(e, Messages) for e in events)  # not even the chat message
    assert [e.code for e in events if isinstance(e, Closed)] == [1002]


@pytest.mark.parametrize("frame", [TypingFrame("Bob", "general"),
                                   ReadFrame("Bob", "general", "01994d7c2a1f.0000.b")],
                         ids=["typing", "read"])
def test_an_old_peer_closes_on_typing_and_read_frames(tmp_path, old_build, frame):
    _, _, server, _ = opened(tmp_path)
    (closed,) = server.receive_text(encode_frame(frame), NOW + 2)
    assert isinstance(closed, Closed) and closed.code == 1002
    assert "unknown frame type" in closed.reason


def test_an_old_peer_refuses_a_reply_as_a_forged_chat_message(tmp_path, old_build):
    """The old build ignored the unknown ``reply`` field and checked the ten-element signature,
    which the reply's (eleven elements, the reply object last) does not match: refused and said
    back in ``refused``; the connection stays open and nothing is shown."""
    _, b, server, _ = opened(tmp_path)
    parent = stamped("b", "lunch?", 1)
    reply = replace(stamped("b", "yes", 2), conv=ConvFields(reply=ReplyRef(parent.id, "B", "lunch?")))
    as_old_reads_it = replace(reply, conv=None)
    (ev,) = server.receive_text(encode_msg(as_old_reads_it, b.trust.sig_for(reply)), NOW + 2)
    assert isinstance(ev, Messages) and ev.items == ()
    assert ev.refused[0][0] == reply.id and "signature" in ev.refused[0][1]
    assert server.state is State.OPEN


def test_this_build_takes_them_all(tmp_path):
    """The same frames without the cut-back tables: accepted at the edge (the control)."""
    _, b, server, _ = opened(tmp_path)
    chat = stamped("b", "hello", 1)
    for event in conversation_events("b", chat):
        (ev,) = server.receive_text(encode_msg(event, b.trust.sig_for(event)), NOW + 2)
        assert isinstance(ev, Messages) and [r.message.id for r in ev.items] == [event.id]
    assert server.receive_text(encode_frame(TypingFrame("Bob", "general")), NOW + 2) is not None
    assert server.state is State.OPEN
