"""The ``/relay`` WebSocket of host mode, with real sockets: the app that host mode serves, under
uvicorn on 127.0.0.1, and real WebSocket clients (the ``websockets`` library) playing static clients.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fletchat.config import Config
from fletchat.host import build_web_app
from fletchat.hub import HubSession, RosterChanged
from fletchat.model import KIND_CHAT, KIND_JOIN, KIND_LEAVE, MAX_FRAME_BYTES, Message
from fletchat.node import Node
from fletchat.protocol import MsgFrame, Pong, SyncFrame
from fletchat.relay_protocol import (
    RELAY_BURST,
    RELAY_DEVICE,
    RelayOnline,
    RelayWelcome,
    decode_client_frame,
    decode_server_frame,
    encode_client_hello,
    encode_client_ping,
    encode_client_send,
)
from tests.timing import eventually, never_within, scaled
from tests.webhost import serving

TIMEOUT = scaled(5.0)


class Host:
    def __init__(self, node: Node, port: int) -> None:
        self.node = node
        self.url = f"ws://127.0.0.1:{port}/relay"
        self.events: list[object] = []
        node.hub.add_listener(self.events.append)

    def messages(self, kind: str | None = None) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message) and kind in (None, e.kind)]

    async def wait_for(self, predicate, what: str):
        for _ in range(int(TIMEOUT / 0.02)):
            found = [e for e in self.events if predicate(e)]
            if found:
                return found[-1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"hub never saw {what}; saw {self.events}")


@pytest.fixture
async def host(tmp_path: Path):
    config = Config(web=True, lan=False, data_dir=tmp_path / "data", port=0)
    node = Node(config, "web-host")
    app = build_web_app(node, static_dir=tmp_path / "no-static-build")
    async with serving(app) as port:
        yield Host(node, port)


class Client:
    """A static client, as the web client speaks to the relay."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[object] = []

    async def next(self, kind, timeout: float = TIMEOUT):
        while True:
            frame = decode_server_frame(await asyncio.wait_for(self.ws.recv(), timeout))
            self.frames.append(frame)
            if isinstance(frame, kind):
                return frame

    async def message(self, predicate, timeout: float = TIMEOUT) -> Message:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next((MsgFrame, SyncFrame))
                msgs = [frame.message] if isinstance(frame, MsgFrame) else list(frame.messages)
                for m in msgs:
                    if predicate(m):
                        return m

    async def closed(self) -> tuple[int, str]:
        """Read until the host closes the connection; its close code and reason."""
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await self.ws.recv()
        assert info.value.rcvd is not None, "the host dropped the connection without a close frame"
        return info.value.rcvd.code, info.value.rcvd.reason


async def open_client(host: Host, name: str | None = None, owner: str = "") -> Client:
    ws = await connect(host.url, max_size=None)
    client = Client(ws)
    if name is not None:
        await ws.send(encode_client_hello(name, owner))
        welcome = await client.next(RelayWelcome)
        assert welcome.name == name.strip()
    return client


async def test_hello_and_message_reach_the_hub_and_other_sessions(host: Host):
    here = HubSession(host.node.hub, device="browser")
    here.join("Bob")
    client = await open_client(host, "  Ada  ")
    await host.wait_for(
        lambda e: isinstance(e, Message) and e.kind == KIND_JOIN and e.author == "Ada", "Ada's join"
    )
    roster = await client.next(RelayOnline)
    while "Ada" not in [p.name for p in roster.people]:
        roster = await client.next(RelayOnline)
    ada = next(p for p in roster.people if p.name == "Ada")
    assert ada.device == RELAY_DEVICE and ada.local
    assert any(o.name == "Ada" and o.device == RELAY_DEVICE for o in host.node.hub.online())

    await client.ws.send(encode_client_send("  hello from the static build \r\nline two "))
    msg = await host.wait_for(
        lambda e: isinstance(e, Message) and e.kind == KIND_CHAT and e.author == "Ada", "Ada's text"
    )
    assert msg.text == "hello from the static build \nline two"
    assert msg.origin == host.node.hub.peer_id
    # The author sees it echoed back by the hub (the client shows only what the host accepted).
    echoed = await client.message(lambda m: m.kind == KIND_CHAT)
    assert echoed == msg
    await client.ws.close()
    await host.wait_for(
        lambda e: isinstance(e, Message) and e.kind == KIND_LEAVE and e.author == "Ada", "the leave"
    )
    assert not any(o.name == "Ada" for o in host.node.hub.online())


async def test_hub_messages_reach_relay_clients(host: Host):
    client = await open_client(host, "Ada")
    bob = HubSession(host.node.hub, device="browser")
    bob.join("Bob")
    sent = bob.send("hi Ada, from a server-side session")
    got = await client.message(lambda m: m.kind == KIND_CHAT)
    assert got == sent
    # Roster changes come as "online" frames.
    assert any(
        isinstance(f, RelayOnline) and "Bob" in [p.name for p in f.people] for f in client.frames
    )
    # ... and a message posted from another thread (Flet's pool) arrives too.
    other = await asyncio.to_thread(bob.send, "from a worker thread")
    assert await client.message(lambda m: m.id == other.id)


async def test_recent_history_on_connect_without_duplicates(host: Host):
    bob = HubSession(host.node.hub)
    bob.join("Bob")
    sent = [bob.send(f"earlier {i}") for i in range(3)]
    client = await open_client(host)
    sync = await client.next(SyncFrame)
    assert [m.id for m in sync.messages][-3:] == [m.id for m in sent]
    later = bob.send("after connecting")
    got = await client.message(lambda m: m.kind == KIND_CHAT)
    assert got == later  # the history was not sent again as single messages
    chats = [f.message.id for f in client.frames if isinstance(f, MsgFrame)]
    assert chats.count(later.id) == 1 and not set(chats) & {m.id for m in sent}


async def test_ping_is_answered(host: Host):
    client = await open_client(host)
    await client.ws.send(encode_client_ping())
    assert isinstance(await client.next(Pong), Pong)


@pytest.mark.parametrize(
    ("frames", "code", "reason"),
    [
        (["{not json"], 1002, "invalid JSON"),
        (["[1, 2]"], 1002, "frame must be a JSON object"),
        (["x" * (MAX_FRAME_BYTES + 1)], 1009, f"frame is over {MAX_FRAME_BYTES} bytes"),
        (
            [json.dumps({"v": 1, "type": "hello", "name": 5})],
            1002,
            "hello.name: Name must be text.",
        ),
        ([json.dumps({"v": 1, "type": "hello", "name": "  "})], 1002, "Name cannot be blank!"),
        ([json.dumps({"v": 1, "type": "hello", "name": "A" * 33})], 1002, "Name is too long"),
        (
            [json.dumps({"v": "1", "type": "hello", "name": "Ada"})],
            1002,
            "integer protocol version",
        ),
        (
            [json.dumps({"v": 2, "type": "hello", "name": "Ada"})],
            1002,
            "unsupported protocol version",
        ),
        ([json.dumps({"v": 1, "type": "msg", "msg": {}})], 1002, "unknown relay frame type 'msg'"),
        ([json.dumps({"v": 1, "type": 7})], 1002, "frame needs a string 'type'"),
        ([encode_client_send("hi")], 1002, "send before hello"),
        (
            [encode_client_hello("Eve"), json.dumps({"v": 1, "type": "send", "text": ["hi"]})],
            1002,
            "send.text: Message must be text.",
        ),
        ([encode_client_hello("Eve"), encode_client_send("x" * 4001)], 1002, "Message is too long"),
        ([encode_client_hello("Eve"), encode_client_send("bell \x07")], 1002, "control characters"),
        ([encode_client_hello("Eve"), encode_client_hello("Eve again")], 1002, "hello sent twice"),
        ([b'{"v":1,"type":"ping"}'], 1003, "binary frames are not accepted"),
        # 100 over the burst: a slow run refills tokens while the pings are read (5 a second)
        ([encode_client_ping()] * (int(RELAY_BURST) + 100), 1008, "flood"),
    ],
    ids=[
        "invalid-json",
        "not-an-object",
        "oversize",
        "name-not-text",
        "blank-name",
        "long-name",
        "version-type",
        "version",
        "peer-frame",
        "type-not-text",
        "send-before-hello",
        "text-not-text",
        "long-text",
        "control-char",
        "hello-twice",
        "binary",
        "flood",
    ],
)
async def test_bad_frames_close_with_a_reason_and_others_keep_working(
    host: Host, frames, code, reason
):
    bystander = await open_client(host, "Bystander")
    bad = await open_client(host)
    for frame in frames:
        try:
            await bad.ws.send(frame)
        except ConnectionClosed:
            break
    got_code, got_reason = await bad.closed()
    assert (got_code, reason in got_reason) == (code, True), got_reason
    # Nothing from the bad client reached the hub but (at most) its valid hello and its leave.
    assert not [m for m in host.messages(KIND_CHAT) if m.author != "Bystander"]
    # The other client is unaffected: it still sends and receives.
    await bystander.ws.send(encode_client_send("still here"))
    got = await bystander.message(lambda m: m.kind == KIND_CHAT and m.text == "still here")
    assert got.author == "Bystander"
    if any("Eve" in str(f) for f in frames):  # it had joined: it left again
        await host.wait_for(
            lambda e: isinstance(e, Message) and e.kind == KIND_LEAVE and e.author == "Eve", "leave"
        )
        assert not any(o.name == "Eve" for o in host.node.hub.online())


async def test_a_flood_of_valid_sends_posts_at_most_the_burst(host: Host, monkeypatch):
    import fletchat.relay

    # No refill: the flood is cut however slowly the host reads it (at 5 a second, a host that
    # took over 2.2 s to read 30 frames never closed the connection).
    monkeypatch.setattr(fletchat.relay, "RELAY_RATE_PER_SECOND", 0.0)
    client = await open_client(host, "Mallory")
    for i in range(int(RELAY_BURST) + 10):
        try:
            await client.ws.send(encode_client_send(f"spam {i}"))
        except ConnectionClosed:
            break
    code, reason = await client.closed()
    assert code == 1008 and "flood" in reason
    # the burst, less the hello's token (each post is stored before the next frame is read)
    def spam() -> int:
        return sum(m.author == "Mallory" for m in host.messages(KIND_CHAT))

    await eventually(lambda: spam() == RELAY_BURST - 1, "the burst's posts", 10)
    await never_within(lambda: spam() > RELAY_BURST - 1, "a post past the burst", 1)


def test_client_frames_round_trip_and_roster_frames_validate():
    assert decode_client_frame(encode_client_hello(" Ada ")).name == "Ada"
    assert decode_client_frame(encode_client_send("  ")).text is None
    from fletchat.hub import Online
    from fletchat.relay_protocol import encode_online

    frame = decode_server_frame(encode_online([Online("k", "Ada", RELAY_DEVICE, 1.0, True)], []))
    assert isinstance(frame, RelayOnline) and frame.people[0].name == "Ada"
    assert RosterChanged  # the host sends one "online" frame per RosterChanged


# ---------------------------------------------------------------- the full UI over the relay


async def test_channels_history_pages_search_and_dms_over_the_relay(host: Host):
    from fletchat.relay_protocol import (
        RELAY_PAGE,
        RelayChannels,
        RelayFound,
        RelayPage,
        encode_client_channel,
        encode_client_history,
        encode_client_search,
    )

    hub = host.node.hub
    bob = HubSession(hub, device="headless")  # a script: no per-person send rate
    bob.join("Bob")
    for i in range(RELAY_PAGE + 5):
        bob.send(f"older {i}")
    bob.send("for Eve only", bob.direct_channel("Eve"))  # a DM the relay client must not see
    client = await open_client(host, "Ada")
    channels = await client.next(RelayChannels)
    assert channels.channels == ("general",)  # Bob and Eve's DM is not listed
    # the newest page, then the one before it
    await client.ws.send(encode_client_history(7, "general"))
    page = await client.next(RelayPage)
    assert page.req == 7 and page.more and len(page.msgs) == RELAY_PAGE
    assert page.msgs[-1].kind == KIND_JOIN and page.msgs[-1].author == "Ada"
    await client.ws.send(encode_client_history(8, "general", before=page.msgs[0].hlc))
    older = await client.next(RelayPage)
    assert older.req == 8 and not older.more
    # general: Bob's join, 55 "older", Ada's join; the newest page ends with Ada's join
    rest = RELAY_PAGE + 5 - (RELAY_PAGE - 1)
    assert [m.text for m in older.msgs if m.kind == KIND_CHAT] == [f"older {i}" for i in range(rest)]
    # someone else's DM: an empty page, never its messages
    await client.ws.send(encode_client_history(9, "@Bob+Eve"))
    assert (await client.next(RelayPage)).msgs == ()
    # search finds only what this client may see
    await client.ws.send(encode_client_search(10, "only"))
    found = await client.next(RelayFound)
    assert found.req == 10 and found.results == ()
    await client.ws.send(encode_client_search(11, "older"))
    found = await client.next(RelayFound)
    assert len(found.results) > 0 and all(m.channel == "general" for m, _ in found.results)
    # a channel, posted to, and a DM with Bob
    await client.ws.send(encode_client_channel("lunch"))
    channels = await client.next(RelayChannels)
    assert "lunch" in channels.channels and "@Bob+Eve" not in channels.channels
    await client.ws.send(encode_client_send("pizza?", "lunch"))
    got = await client.message(lambda m: m.text == "pizza?")
    assert got.channel == "lunch" and got.author == "Ada"
    await client.ws.send(encode_client_send("hi Bob", "@Ada+Bob"))
    got = await client.message(lambda m: m.text == "hi Bob")
    assert got.channel == "@Ada+Bob"
    # others' DMs are not pushed live either
    bob.send("still for Eve", bob.direct_channel("Eve"))
    bob.send("marker after")
    seen = await client.message(lambda m: m.text in ("still for Eve", "marker after"))
    assert seen.text == "marker after"


async def test_sending_into_someone_elses_dm_closes_the_connection(host: Host):
    client = await open_client(host, "Mallory")
    await client.ws.send(encode_client_send("sneaky", "@Bob+Eve"))
    code, reason = await client.closed()
    assert code == 1002 and "not one of your channels" in reason
    assert not [m for m in host.messages(KIND_CHAT) if m.author == "Mallory"]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ({"type": "history", "req": -1, "channel": "general"}, "history.req"),
        ({"type": "history", "req": True, "channel": "general"}, "history.req"),
        ({"type": "history", "req": 1, "channel": "x" * 81}, "history.channel"),
        ({"type": "history", "req": 1, "channel": "general", "before": "\x00"}, "history.before"),
        ({"type": "search", "req": 1, "query": "   "}, "search.query"),
        ({"type": "search", "req": 1, "query": "q" * 201}, "search.query"),
        ({"type": "send", "text": "hi", "channel": " general"}, "send.channel"),
        ({"type": "channel", "name": 5}, "channel.name"),
    ],
)
def test_new_client_frames_are_validated_at_the_edge(frame, reason):
    from fletchat.protocol import ProtocolError

    with pytest.raises(ProtocolError) as info:
        decode_client_frame(json.dumps({"v": 1, **frame}))
    assert reason in str(info.value)


def test_server_frames_round_trip_and_hostile_ones_are_refused():
    from fletchat.protocol import ProtocolError
    from fletchat.relay_protocol import (
        RelayChannels,
        RelayDelivered,
        RelayFound,
        RelayPage,
        RelayProblems,
        encode_channels,
        encode_delivered,
        encode_found,
        encode_page,
        encode_problems,
    )

    m = Message.chat("Ada", "hello there", "peer-1")
    page = decode_server_frame(encode_page(3, "general", [m], {m.id}, True))
    assert isinstance(page, RelayPage) and page.msgs == (m,) and page.pending == (m.id,)
    found = decode_server_frame(encode_found(4, [(m, "hello \x02there\x03")]))
    assert isinstance(found, RelayFound) and found.results == ((m, "hello \x02there\x03"),)
    assert decode_server_frame(encode_channels(["general", "@Ada+Bob"])) == RelayChannels(
        ("general", "@Ada+Bob"))
    [delivered] = encode_delivered([m.id], 5.0)
    assert decode_server_frame(delivered) == RelayDelivered((m.id,), 5.0)
    ids = [Message.chat("Ada", f"m{i}", "peer-1").id for i in range(300)]
    frames = encode_problems(["History is read-only: disk is full.", "x" * 5000], ids)
    assert [decode_server_frame(f) for f in frames] == [
        RelayProblems(("History is read-only: disk is full.", "x" * 1000), tuple(ids[:256])),
        RelayProblems(("History is read-only: disk is full.", "x" * 1000), tuple(ids[256:]))]
    assert decode_server_frame(encode_problems([])[0]) == RelayProblems((), ())
    # a page too big for one frame keeps the newest messages that fit, and says there is more
    big = [Message.chat("Ada", "x" * 3999, "peer-1") for _ in range(50)]
    text = encode_page(1, "general", big, (), False)
    assert len(text.encode()) <= MAX_FRAME_BYTES
    fitted = decode_server_frame(text)
    assert fitted.more and 0 < len(fitted.msgs) < 50 and fitted.msgs[-1] == big[-1]
    for bad, why in [
        ({"type": "page", "req": 1, "channel": "general", "msgs": [{}], "more": False}, "page"),
        ({"type": "page", "req": 1, "channel": "general", "msgs": [], "more": 1}, "page.more"),
        ({"type": "found", "req": 1, "results": [{"msg": m.to_dict(), "snippet": "a\x00"}]},
         "found.snippet"),
        ({"type": "delivered", "ids": ["not an id!"], "at": 1.0}, "delivered.ids"),
        ({"type": "channels", "channels": ["ok", ""]}, "channels.channel"),
        ({"type": "problems", "problems": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"type": "problems", "problems": ["disk\u202efull"]}, "control characters"),
        ({"type": "problems", "problems": ["  "]}, "blank"),
        ({"type": "problems", "problems": [], "not_saved": ["../x"]}, "problems.not_saved"),
    ]:
        with pytest.raises(ProtocolError) as info:
            decode_server_frame(json.dumps({"v": 1, **bad}))
        assert why in str(info.value)


async def test_a_read_only_history_on_the_host_reaches_static_clients(host: Host):
    """The host's disk fills: a static client gets the banner's sentence and the message of its
    own that went out unsaved, its next send is answered with the reason (not a closed
    connection), and a client that connects later is told at once."""
    from fletchat.events import StoreFailed
    from fletchat.relay_protocol import RelayProblems
    from tests.test_storage_faults import fill_up

    hub = host.node.hub
    client = await open_client(host, "Ada")
    fill_up(hub.store)
    sent: list[str] = []
    problems = None
    for i in range(200):  # each is posted, goes out, and its insert fails once the file is full
        await client.ws.send(encode_client_send(f"filler {i} " + "x" * 3000))
        sent.append((await client.message(lambda m, i=i: m.text.startswith(f"filler {i} "))).id)
        await asyncio.to_thread(hub.flush)
        if any(isinstance(e, StoreFailed) for e in host.events):
            problems = await client.next(RelayProblems)
            break
        await asyncio.sleep(0.25)  # under the relay's 5 frames a second
    assert problems is not None, "the history never filled up"
    assert "read-only" in problems.problems[0] and problems.problems[0] == hub.store_error
    assert problems.not_saved == (sent[-1],)
    await client.ws.send(encode_client_send("one more"))
    refused = await client.next(RelayProblems)
    assert refused.problems == (hub.store_error,) and refused.not_saved == ()
    await client.ws.send(encode_client_ping())
    await client.next(Pong)  # still connected
    later = await open_client(host)
    assert (await later.next(RelayProblems)).problems == (hub.store_error,)
    await client.ws.close()
    await later.ws.close()


def test_a_client_that_does_not_read_is_bounded_in_characters_as_well_as_frames():
    """A client that never reads and asks for history pages (each up to 50 messages) once held
    1000 of them; now what waits for it is bounded in characters too, welcome frames included."""
    from types import SimpleNamespace

    from fletchat.relay import _Client
    from fletchat.relay_protocol import RELAY_QUEUE_CHARS

    client = _Client(SimpleNamespace(client=None), session=None)  # type: ignore[arg-type]
    client.welcome("w" * 1_000_000)  # a welcome is always queued, and counts
    page, pushed = "p" * 100_000, 0
    while not client.fell_behind:
        client.push(page)
        pushed += 1
    assert pushed - 1 == (RELAY_QUEUE_CHARS - 1_000_000) // len(page)  # the last one was refused
    assert client.queued_chars <= RELAY_QUEUE_CHARS
    assert client.queue.qsize() == pushed + 1  # the welcome, the pages, and the close
    client.push("after")  # nothing more is queued for it
    assert client.queue.qsize() == pushed + 1
