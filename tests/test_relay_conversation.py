"""The relay's conversation frames with real sockets (host mode under uvicorn, a websockets
client playing the static client): reply, react, edit, delete as ``conv`` requests answered by
``done``; rows, typing and read marks pushed; refusals said without closing the connection."""

from __future__ import annotations

import json

import pytest

from fletchat.conversation.relay_frames import (
    RelayDone,
    RelayMarks,
    RelayRow,
    RelayTyping,
    decode_client_conv,
    encode_client_conv,
)
from fletchat.hub import HubSession
from fletchat.model import KIND_CHAT
from fletchat.protocol import MsgFrame, ProtocolError
from fletchat.relay_protocol import decode_client_frame, encode_client_history
from tests.test_relay import Host, host, open_client  # noqa: F401  (the fixture)

THUMBS = "\U0001f44d"


async def test_a_static_client_replies_reacts_edits_and_deletes(host: Host):  # noqa: F811
    bob = HubSession(host.node.hub, device="browser")
    bob.join("Bob")
    client = await open_client(host, "Ada")
    theirs = bob.send("who is in?")
    await client.message(lambda m: m.id == theirs.id)
    used = 0  # frames of ``client.frames`` already matched

    async def frame(kind, check=lambda f: True):
        """The next frame of ``kind`` that passes ``check``, in the order the host sent them
        (an action runs on a worker thread: its row or message may come before its done)."""
        nonlocal used
        while True:
            for i in range(used, len(client.frames)):
                f = client.frames[i]
                if isinstance(f, kind) and check(f):
                    client.frames[i] = None  # taken
                    return f
            used = len(client.frames)
            await client.next(kind)
            used = min(used, len(client.frames) - 1)

    await client.ws.send(encode_client_conv(1, "reply", theirs.id, "me!", "general"))
    assert (await frame(RelayDone)) == RelayDone(1, "")
    mine = (await frame(MsgFrame, lambda f: f.message.kind == KIND_CHAT
                        and f.message.author == "Ada")).message
    assert mine.conv is not None and mine.conv.reply is not None
    assert mine.conv.reply.parent_id == theirs.id and mine.conv.reply.snippet == "who is in?"
    await client.ws.send(encode_client_conv(2, "react", theirs.id, THUMBS))
    row = await frame(RelayRow, lambda f: f.row.id == theirs.id)
    assert [(r.emoji, r.who, r.mine) for r in row.row.reactions] == [(THUMBS, ("Ada",), True)]
    assert (await frame(RelayDone)) == RelayDone(2, "")
    await client.ws.send(encode_client_conv(3, "edit", theirs.id, "mine now"))
    refused = await frame(RelayDone)
    assert refused.req == 3 and "Only the author" in refused.error
    await client.ws.send(encode_client_conv(4, "edit", mine.id, "me! (and Cy)"))
    row = await frame(RelayRow, lambda f: f.row.id == mine.id)
    assert row.row.text == "me! (and Cy)" and row.row.edited
    await client.ws.send(encode_client_conv(5, "delete", mine.id))
    row = await frame(RelayRow, lambda f: f.row.deleted)
    assert row.row.id == mine.id and row.row.text == ""
    assert host.node.hub.conv.row_state(mine).deleted


async def test_typing_and_read_marks_reach_a_static_client(host: Host):  # noqa: F811
    client = await open_client(host, "Ada")
    bob = HubSession(host.node.hub, device="browser")
    bob.join("Bob")
    bob.typing("general")
    typing = await client.next(RelayTyping)
    assert typing == RelayTyping("general", ("Bob",))
    ada_msg = None
    await client.ws.send(json.dumps({"v": 1, "type": "send", "text": "hi", "channel": "general"}))
    ada_msg = await client.message(lambda m: m.author == "Ada")
    bob.mark_read("general", ada_msg)
    marks = await client.next(RelayMarks)
    assert [(m.name, m.upto) for m in marks.marks] == [("Bob", ada_msg.hlc)]
    await client.ws.send(encode_client_conv(0, "typing", channel="general"))
    assert await _eventually(lambda: bob.typing_names("general") == ["Ada"])


async def _eventually(check) -> bool:
    import asyncio

    for _ in range(250):
        if check():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.parametrize("fields, error", [
    ({"op": "shout"}, "conv.op"),
    ({"op": "react", "target": "m1", "text": THUMBS * 5000}, "too long"),
    ({"op": "edit", "target": "m1", "text": "   "}, "blank"),
    ({"op": "delete", "target": "bad id!"}, "conv.target"),
    ({"op": "read", "target": "yesterday"}, "conv.target"),
])
def test_bad_conv_frames_are_refused_at_the_edge(fields, error):
    obj = {"v": 1, "type": "conv", "req": 1, "channel": "general", **fields}
    with pytest.raises(ProtocolError, match=error):
        decode_client_frame(json.dumps(obj))
    good = decode_client_frame(encode_client_conv(7, "react", "m1", THUMBS))
    assert good == decode_client_conv(json.loads(encode_client_conv(7, "react", "m1", THUMBS)))


async def test_read_marks_come_with_the_history_and_with_a_page(host: Host):  # noqa: F811
    """Who read how far came only when someone read further: a static client that connected
    (or opened a channel) showed "seen by" as nobody until then."""
    bob = HubSession(host.node.hub, device="browser")
    bob.join("Bob")
    cy = HubSession(host.node.hub, device="browser")
    cy.join("Cy")
    bob.create_channel("lunch")
    lunch = cy.send("pizza?", "lunch")
    hello = cy.send("hi all")
    assert lunch is not None and hello is not None
    bob.mark_read("general", hello)
    bob.mark_read("lunch", lunch)
    client = await open_client(host, "Ada")
    # sent on connect, before the welcome (which ``open_client`` waited for)
    marks = next((f for f in client.frames if isinstance(f, RelayMarks)), None) or (
        await client.next(RelayMarks))
    assert marks.channel == "general" and [(m.name, m.upto) for m in marks.marks] == [
        ("Bob", hello.hlc)]
    await client.ws.send(encode_client_history(1, "lunch"))
    marks = await client.next(RelayMarks)
    assert marks.channel == "lunch" and [(m.name, m.upto) for m in marks.marks] == [
        ("Bob", lunch.hlc)]
