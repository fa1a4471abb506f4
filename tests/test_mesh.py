"""The mesh over real WebSockets on 127.0.0.1 (ephemeral ports, no mocks of the network).

Waits are "eventually" loops with generous upper bounds; nothing asserts how fast things happen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import MAX_FRAME_BYTES, Message, Peer
from fletchat.protocol import (
    PEER_PROTOCOL_VERSION,
    Hello,
    Ping,
    decode_frame,
    encode_frame,
    encode_msg,
)
from tests.meshhost import RecordingHost
from tests.timing import eventually, never_within, scaled

LOOPBACK = "127.0.0.1"
# Heartbeats run, but with a timeout no stalled loop reaches: tests that assert "nobody went down"
# must not be timing assertions. Only tests of the timeout itself use a short one (SILENT).
FAST = {"heartbeat_interval": 0.2, "heartbeat_timeout": scaled(30.0),
        "handshake_timeout": scaled(2.0)}
SILENT = {"heartbeat_interval": 0.2, "heartbeat_timeout": scaled(1.0),
          "handshake_timeout": scaled(2.0)}


class Node:
    """A Mesh plus a record of everything its callbacks saw."""

    def __init__(self, peer_id: str, history: list[Message] | None = None, **options) -> None:
        self.id = peer_id
        self.host = RecordingHost(history=list(history or []))
        self.msgs = self.host.msgs
        self.ups = self.host.ups
        self.downs = self.host.downs
        opts = {**FAST, "reconnect_min": 0.05, "reconnect_max": 0.4, **options}
        self.mesh = Mesh(
            Peer(peer_id, peer_id.capitalize()), self.host, MeshSettings(host=LOOPBACK, **opts)
        )

    @property
    def port(self) -> int:
        return self.mesh.port

    def connected(self) -> set[str]:
        return {p.id for p in self.mesh.peers()}

    def texts(self) -> list[str]:
        return [m.text for m, _ in self.msgs]

    def dial(self, other: Node, peer_id: str | None = None) -> None:
        self.mesh.add_peer_address(LOOPBACK, other.port, peer_id)


@pytest.fixture
async def nodes():
    made: list[Node] = []

    async def make(peer_id: str, **options) -> Node:
        node = Node(peer_id, **options)
        await node.mesh.start()
        made.append(node)
        return node

    yield make
    await asyncio.gather(*(n.mesh.stop() for n in made), return_exceptions=True)


def chat(text: str, origin: str) -> Message:
    return Message.chat(origin.capitalize(), text, origin)


async def test_start_returns_the_port_and_a_busy_port_is_a_clear_oserror(nodes):
    a = await nodes("a")
    assert a.port > 0
    clash = Mesh(Peer("z", "Z"), RecordingHost(), MeshSettings(host=LOOPBACK, port=a.port))
    with pytest.raises(OSError, match=f"cannot listen for peers on {LOOPBACK}:{a.port}"):
        await clash.start()


async def test_three_peers_broadcast_reaches_each_other_peer_exactly_once(nodes):
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    a.dial(b)
    a.dial(c)
    b.dial(c)
    await eventually(
        lambda: a.connected() == {"b", "c"} and b.connected() == {"a", "c"},
        "a full mesh of three",
    )
    await eventually(lambda: c.connected() == {"a", "b"}, "c sees both")
    await eventually(
        lambda: all(n.mesh.open_connections() == 2 for n in (a, b, c)), "one socket per pair"
    )
    # The address a peer is known by is its remote IP plus the port it advertised.
    seen_a = next(p for p in b.mesh.peers() if p.id == "a")
    assert (seen_a.host, seen_a.port, seen_a.name) == (LOOPBACK, a.port, "A")

    hello = chat("hello mesh", "a")
    a.mesh.broadcast(hello)
    await eventually(lambda: b.msgs and c.msgs, "b and c got the broadcast")
    await never_within(  # room for any duplicate or echo to show up
        lambda: len(b.msgs) > 1 or len(c.msgs) > 1 or a.msgs, "a duplicate or an echo", 0.3
    )
    assert b.msgs == [(hello, "a")]
    assert c.msgs == [(hello, "a")]
    assert a.msgs == []

    # exclude leaves one peer out (the hub uses it not to echo a relayed message back)
    b.mesh.broadcast(chat("not for c", "b"), exclude="c")
    await eventually(lambda: "not for c" in a.texts(), "a got it")
    await never_within(lambda: "not for c" in c.texts(), "the excluded peer got it", 0.2)
    assert [p.id for p in a.ups] == ["b", "c"] or [p.id for p in a.ups] == ["c", "b"]
    assert a.downs == b.downs == c.downs == []


async def test_peers_dialing_each_other_end_with_one_connection(nodes):
    a, b = await nodes("a"), await nodes("b")
    a.dial(b)
    b.dial(a)
    await eventually(lambda: a.connected() == {"b"} and b.connected() == {"a"}, "connected")
    await eventually(
        lambda: a.mesh.open_connections() == 1 and b.mesh.open_connections() == 1,
        "the duplicate connection closed",
    )
    await never_within(  # stays settled: no reconnect churn
        lambda: a.mesh.open_connections() != 1 or b.mesh.open_connections() != 1,
        "reconnect churn",
        0.5,
    )
    assert [p.id for p in a.ups] == ["b"] and [p.id for p in b.ups] == ["a"]
    assert a.downs == [] and b.downs == []
    a.mesh.broadcast(chat("once", "a"))
    b.mesh.broadcast(chat("twice? no", "b"))
    await eventually(lambda: b.msgs and a.msgs, "both directions work")
    await never_within(lambda: len(a.msgs) > 1 or len(b.msgs) > 1, "a second copy", 0.2)
    assert b.texts() == ["once"] and a.texts() == ["twice? no"]


async def test_a_peer_dialing_itself_is_dropped_and_not_redialed(nodes):
    a = await nodes("a")
    a.mesh.add_peer_address(LOOPBACK, a.port)
    await eventually(lambda: not a.mesh._dialer.wanted, "the address is recognised as this peer")
    # both ends of the self-connection may still be closing when the address is dropped
    await eventually(lambda: a.mesh.open_connections() == 0, "the self-connection is closed")
    assert a.ups == [] and not a.connected()
    await never_within(
        lambda: a.ups or a.connected() or a.mesh.open_connections(), "a redialed itself", 0.3
    )


class Proxy:
    """A TCP relay the test can freeze: frames vanish but sockets stay open, like a dead link."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.frozen = False
        self.generation = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self.frozen:  # nothing answers while the link is down
            cw.close()
            return
        try:
            ur, uw = await asyncio.open_connection(LOOPBACK, self.target)
        except OSError:
            cw.close()
            return
        self.writers += [cw, uw]
        gen = self.generation
        await asyncio.gather(self._pump(cr, uw, gen), self._pump(ur, cw, gen))
        cw.close()
        uw.close()

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, gen: int) -> None:
        try:
            while data := await r.read(65536):
                if gen == self.generation:  # a frozen link swallows everything, for good
                    w.write(data)
                    await w.drain()
        except OSError:
            pass

    def freeze(self) -> None:
        self.frozen = True
        self.generation += 1

    def thaw(self) -> None:
        self.frozen = False

    async def stop(self) -> None:
        self.server.close()
        for w in self.writers:
            w.close()


async def test_a_stall_of_this_hosts_own_loop_does_not_drop_a_live_peer(nodes):
    """A starved CPU or a long GC stops the whole loop past the heartbeat timeout: nothing was
    read meanwhile, but the peer is alive. Its next pings count; nobody goes down."""
    a, b = await nodes("a", **SILENT), await nodes("b", **SILENT)
    a.mesh.add_peer_address(LOOPBACK, b.port)
    await eventually(lambda: a.connected() == {"b"} and b.connected() == {"a"}, "connected")
    downs_a, downs_b = len(a.downs), len(b.downs)
    time.sleep(SILENT["heartbeat_timeout"] * 1.5)  # noqa: ASYNC251 - the stall under test
    await never_within(lambda: len(a.downs) > downs_a or len(b.downs) > downs_b,
                       "a peer dropped for this loop's own stall", 1.0)
    assert a.connected() == {"b"} and b.connected() == {"a"}


async def test_a_silent_peer_is_dropped_and_reconnected_when_it_comes_back(nodes):
    a, b = await nodes("a", **SILENT), await nodes("b", **SILENT)
    link = Proxy(b.port)
    await link.start()
    try:
        a.mesh.add_peer_address(LOOPBACK, link.port)
        await eventually(lambda: a.connected() == {"b"} and b.connected() == {"a"}, "connected")
        # Counted from the freeze: a loop stalled past the short timeout before it may already
        # have cost a drop and a reconnect, which is not what this test is about.
        downs_a, downs_b, ups_a = len(a.downs), len(b.downs), len(a.ups)
        link.freeze()
        await eventually(
            lambda: len(a.downs) > downs_a and len(b.downs) > downs_b,
            "both sides drop the silent peer",
            10.0,
        )
        assert [(p.id, reason) for p, reason in a.downs[downs_a:]] == [("b", "heartbeat timeout")]
        assert [(p.id, reason) for p, reason in b.downs[downs_b:]] == [("a", "heartbeat timeout")]
        assert a.connected() == set() and b.connected() == set()
        link.thaw()
        await eventually(
            lambda: a.connected() == {"b"} and b.connected() == {"a"}, "reconnected", 15.0
        )
        assert [p.id for p in a.ups[ups_a:]][:1] == ["b"]
        a.mesh.broadcast(chat("back again", "a"))
        await eventually(lambda: b.texts() == ["back again"], "traffic flows again")
    finally:
        await link.stop()


async def test_a_restarted_peer_replaces_its_old_connection_without_a_down(nodes):
    # a's heartbeat is slow here, so the old connection is still "alive" when b comes back.
    a = await nodes("a", heartbeat_interval=1.0, heartbeat_timeout=scaled(8.0))
    b1 = await nodes("b")
    link = Proxy(a.port)
    await link.start()
    try:
        b1.mesh.add_peer_address(LOOPBACK, link.port)
        await eventually(lambda: a.connected() == {"b"}, "b connected through the link")
        link.freeze()  # b1 is gone as far as a can tell (laptop lid closed)
        b2 = await nodes("b")  # same id, new process, new port
        b2.dial(a)
        await eventually(
            lambda: [p.port for p in a.mesh.peers()] == [b2.port], "a now uses b's new connection"
        )
        assert a.downs == []
        assert [p.port for p in a.ups] == [b1.port, b2.port]  # up again = update, once per session
        a.mesh.broadcast(chat("hi new b", "a"))
        await eventually(lambda: b2.texts() == ["hi new b"], "b2 receives")
        assert b1.texts() == []
    finally:
        await link.stop()


async def test_sync_gives_a_newcomer_the_recent_history(nodes):
    history = [chat(f"earlier {i}", "a") for i in range(5)]
    a = await nodes("a", history=history)
    b = await nodes("b")
    b.dial(a)
    await eventually(lambda: len(b.msgs) == 5, "history arrived")
    assert b.msgs == [(m, "a") for m in history]
    await never_within(lambda: a.msgs, "a got something though b had nothing to share", 0.2)


async def test_a_live_message_waits_behind_the_catch_up_pages_still_being_judged(nodes):
    """Catch-up pages are judged on a worker thread while the read loop goes on; one link's
    messages still reach the host in the order they came: a live message read while the pages
    before it are being judged waits its turn."""
    history = [chat(f"earlier {i} " + "x" * 1500, "a") for i in range(100)]  # 3 sync frames
    a = await nodes("a", history=history)
    b = await nodes("b")

    def slowly(msg: Message) -> str:  # each page takes a while to judge (on the worker thread)
        if msg.text.startswith("earlier"):
            time.sleep(0.003)
        return ""

    b.host.refuse = slowly
    b.dial(a)
    await eventually(lambda: "b" in a.connected(), "b connected to a")
    live = chat("now", "a")
    a.mesh.broadcast(live)
    await eventually(lambda: len(b.msgs) == 101, "the history and the live message arrived")
    assert [m.id for m, _ in b.msgs] == [m.id for m in history] + [live.id]


async def test_gossip_spreads_manually_added_peers(nodes):
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    a.dial(b)  # only a->b and b->c are configured
    b.dial(c)
    await eventually(lambda: "c" in a.connected() and "a" in c.connected(), "a and c met")
    await eventually(
        lambda: all(n.mesh.open_connections() == 2 for n in (a, b, c)), "one socket per pair"
    )
    a.mesh.broadcast(chat("direct", "a"))
    await eventually(lambda: c.msgs == [(c.msgs[0][0], "a")] if c.msgs else False, "a -> c")


async def test_a_failing_callback_does_not_break_the_connection(nodes):
    a, b = await nodes("a"), await nodes("b")
    calls = []

    def explode(msg: Message, sender: str, **_) -> None:
        calls.append(msg.text)
        raise RuntimeError("app bug")

    b.host.receive = explode
    a.dial(b)
    await eventually(lambda: b.connected() == {"a"}, "connected")
    a.mesh.broadcast(chat("one", "a"))
    a.mesh.broadcast(chat("two", "a"))
    await eventually(lambda: calls == ["one", "two"], "both delivered despite the exception")
    assert b.connected() == {"a"}


# ---- hostile or broken clients ----

RAW_HELLO = encode_frame(Hello("raw-client", "Raw", "desktop", 0, "0.1.0", "rawsession", 0))


def _frame(**fields) -> str:
    return json.dumps({"v": PEER_PROTOCOL_VERSION, **fields})


BAD_CASES = {
    "invalid json": ([RAW_HELLO, "{this is not json"], 1002, "invalid JSON"),
    "wrong types": (
        [RAW_HELLO, _frame(type="msg", msg={**chat("x", "raw").to_dict(), "author": 5})],
        1002,
        "msg.msg",
    ),
    "bad hello": (
        [_frame(type="hello", id="r", name="R", device="desktop", port="x")],
        1002,
        "port",
    ),
    "unknown version": ([json.dumps({"v": 99, "type": "hello"})], 1002, "version 99"),
    "unknown type": ([RAW_HELLO, _frame(type="shout")], 1002, "unknown frame type"),
    "message before hello": ([encode_msg(chat("sneaky", "raw"))], 1002, "expected hello first"),
    "second hello": ([RAW_HELLO, RAW_HELLO], 1002, "second hello"),
    "oversize": ([RAW_HELLO, "x" * (MAX_FRAME_BYTES + 1)], 1009, ""),
    "binary": ([RAW_HELLO, b"\x00\x01"], 1003, "binary"),
    "flood": ([RAW_HELLO] + [encode_frame(Ping())] * 2000, 1008, "rate limit"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
async def test_bad_frames_close_only_that_connection(nodes, caplog, case):
    frames, code, reason = BAD_CASES[case]
    server, good = await nodes("server"), await nodes("good")
    good.dial(server)
    await eventually(lambda: server.connected() == {"good"}, "the well-behaved peer is in")

    caplog.set_level(logging.INFO, logger="fletchat.mesh")
    async with connect(f"ws://{LOOPBACK}:{server.port}/", max_size=None) as raw:
        assert isinstance(decode_frame(await raw.recv()), Hello)  # the server speaks first
        try:
            for f in frames:
                await raw.send(f)
        except ConnectionClosed:
            pass  # the flood is cut off mid-way
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(raw.recv(), scaled(5))
    assert closed.value.rcvd is not None, "the server sent a close frame"
    assert closed.value.rcvd.code == code
    assert reason in closed.value.rcvd.reason
    warnings = [r for r in caplog.records if r.name.startswith("fletchat.mesh")]
    assert any(r.levelno == logging.WARNING and f"({code})" in r.getMessage() for r in warnings)

    # Nothing reached the app, the raw client is gone, and the good peer never noticed.
    await eventually(lambda: server.connected() == {"good"}, "the bad connection is gone")
    assert server.msgs == []
    assert {p.id for p, _ in server.downs} <= {"raw-client"}
    server.mesh.broadcast(chat(f"still here after {case}", "server"))
    await eventually(lambda: good.texts() == [f"still here after {case}"], "good peer receives")
    assert good.downs == []
    assert server.connected() == {"good"}


async def test_a_client_that_never_says_hello_is_closed(nodes):
    server = await nodes("server", **SILENT)  # the wait for a hello is the heartbeat timeout
    async with connect(f"ws://{LOOPBACK}:{server.port}/") as raw:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(raw.recv(), scaled(5))
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "handshake not done in time")


async def test_broadcast_and_addresses_from_another_thread(nodes):
    # Flet runs sync handlers in a thread pool and zeroconf has its own threads.
    a, b = await nodes("a"), await nodes("b")
    await asyncio.to_thread(a.mesh.add_peer_address, LOOPBACK, b.port, "b")
    await eventually(lambda: a.connected() == {"b"}, "connected")
    await asyncio.to_thread(a.mesh.broadcast, chat("from a thread", "a"))
    await eventually(lambda: b.texts() == ["from a thread"], "delivered")


async def test_forget_stops_redialing_but_keeps_the_live_connection(nodes):
    a, b = await nodes("a"), await nodes("b")
    a.dial(b, "b")
    await eventually(lambda: a.connected() == {"b"}, "connected")
    a.mesh.forget_peer_address("b")
    assert not a.mesh._dialer.wanted
    await never_within(lambda: a.connected() != {"b"}, "the live connection dropped", 0.3)
    await b.mesh.stop()
    await eventually(lambda: a.downs, "b said bye")
    assert [(p.id, reason) for p, reason in a.downs] == [("b", "left: shutting down")]
    assert a.mesh.open_connections() == 0


async def test_with_real_hubs_a_newcomer_relaying_a_full_sync_is_not_taken_for_a_flood():
    # The hub relays every new message it receives, so a newcomer passes a whole sync on at once.
    from fletchat.hub import Hub
    from fletchat.node import mesh_for_hub

    meshes: list[Mesh] = []
    hubs: dict[str, Hub] = {}
    downs: list[tuple[str, str, str]] = []

    class RecordingHub(Hub):
        def peer_down(self, peer: Peer, reason: str = "") -> None:
            downs.append((self.peer_id, peer.id, reason))
            super().peer_down(peer, reason)

    async def start(peer_id: str) -> Mesh:
        hub = RecordingHub(peer_id)
        mesh = mesh_for_hub(
            hub, Peer(peer_id, peer_id.capitalize()), settings=MeshSettings(host=LOOPBACK, **FAST)
        )
        hubs[peer_id] = hub
        await mesh.start()
        meshes.append(mesh)
        return mesh

    try:
        a, b, c = await start("a"), await start("b"), await start("c")
        for i in range(100):
            hubs["a"].post(chat(f"old {i}", "a"))
        b.add_peer_address(LOOPBACK, c.port)
        await eventually(lambda: len(c.peers()) == 1, "b and c connected, both with no history")
        c.add_peer_address(LOOPBACK, a.port)  # c gets a's 100 messages and relays them all to b
        for hub in hubs.values():
            await eventually(lambda hub=hub: len(hub.history()) == 100, "everyone has the history")
        await eventually(lambda: all(len(m.peers()) == 2 for m in meshes), "full mesh")
        await never_within(lambda: downs, "a peer dropped (taken for a flood?)", 0.3)
        assert [m.text for m in hubs["b"].history()] == [f"old {i}" for i in range(100)]
    finally:
        await asyncio.gather(*(m.stop() for m in meshes), return_exceptions=True)
