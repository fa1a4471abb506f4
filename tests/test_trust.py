"""Identity keys, trust on first use, signed messages, TLS and blocking — on real files and real
TLS WebSockets on 127.0.0.1 (ephemeral ports, no mocks of the network or of the crypto)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import ssl
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from fletchat.clock import HLC
from fletchat.hub import Hub, HubSession, IdentityWarning
from fletchat.identity import KEY_FILE, Identity, fingerprint
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import Message, Peer, ValidationError
from fletchat.peer.registry import SlotLimits
from fletchat.protocol import (
    Auth,
    Hello,
    auth_transcript,
    decode_b64,
    decode_frame,
    encode_auth,
    encode_frame,
    encode_msg,
    message_signing_bytes,
)
from fletchat.trust import (
    CHANGED,
    KNOWN,
    NEW,
    REFUSED,
    UNVERIFIED,
    VERIFIED,
    SignatureBook,
    Trust,
    TrustStore,
)
from fletchat.trust import main as trust_cli
from tests.meshhost import RecordingHost, chat, node_pool
from tests.timing import eventually, never_within, scaled

LOOPBACK = "127.0.0.1"
# A heartbeat timeout no stalled loop reaches: a drop here is never a slow machine's artefact.
FAST = {"heartbeat_interval": 0.2, "heartbeat_timeout": scaled(30.0),
        "handshake_timeout": scaled(5.0),
        "reconnect_min": 0.05, "reconnect_max": 0.4}
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


# ---------------------------------------------------------------- identity and fingerprints


@posix_only
def test_key_pair_is_created_owner_only_and_stable(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path / "d")
    again = Identity.load_or_create(tmp_path / "d")
    assert first.public_key == again.public_key and len(first.public_key) == 32
    assert first.cert_der == again.cert_der
    assert stat.S_IMODE((tmp_path / "d" / KEY_FILE).stat().st_mode) == 0o600
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", first.fingerprint)
    assert first.fingerprint != Identity.load_or_create(tmp_path / "other").fingerprint


def test_unreadable_key_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    old = Identity.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).write_text("not a key")
    new = Identity.load_or_create(tmp_path)
    assert new.public_key != old.public_key
    assert list(tmp_path.glob(f"{KEY_FILE}.corrupt-*"))


def test_fingerprint_is_short_and_depends_on_every_key_bit() -> None:
    key = bytes(32)
    assert fingerprint(key) != fingerprint(bytes(31) + b"\x01")
    assert len(fingerprint(key)) == 19


# ---------------------------------------------------------------- trust on first use


def test_tofu_new_known_changed_forget_and_persisted(tmp_path: Path) -> None:
    store = TrustStore.open(tmp_path)
    k1, k2 = secrets.token_bytes(32), secrets.token_bytes(32)
    assert store.check("alex-1", k1, "Alex").status == NEW
    assert store.check("alex-1", k1, "Alex").status == KNOWN
    changed = store.check("alex-1", k2, "Alex")
    assert changed.status == CHANGED and changed.old_fingerprint == fingerprint(k1)
    # Never silently accepted: still the old key, after a restart too.
    again = TrustStore.open(tmp_path)
    assert again.key_of("alex-1") == k1
    assert again.check("alex-1", k2).status == CHANGED
    assert again.forget("alex-1")
    assert TrustStore.open(tmp_path).check("alex-1", k2).status == NEW
    if sys.platform != "win32":
        assert stat.S_IMODE((tmp_path / "trust.json").stat().st_mode) == 0o600


def test_blocks_are_persisted(tmp_path: Path) -> None:
    store = TrustStore.open(tmp_path)
    store.block("spammer", "Spam")
    assert TrustStore.open(tmp_path).blocked() == {"spammer": "Spam"}
    assert TrustStore.open(tmp_path).unblock("spammer")
    assert not TrustStore.open(tmp_path).is_blocked("spammer")


def test_damaged_trust_file_is_kept_aside(tmp_path: Path, caplog) -> None:
    (tmp_path / "trust.json").write_text('{"known": {"x": {"key": 5}}}')
    with caplog.at_level(logging.ERROR, "fletchat.trust"):
        store = TrustStore.open(tmp_path)
    assert store.known() == {}
    assert list(tmp_path.glob("trust.json.corrupt-*"))
    assert "trusted on first use again" in caplog.text


def test_forget_peer_cli(tmp_path: Path, capsys) -> None:
    TrustStore.open(tmp_path).check("p1", bytes(32), "P")
    assert trust_cli(["--data-dir", str(tmp_path), "--forget-peer", "p1", "--list"]) == 0
    assert "forgot p1" in capsys.readouterr().out
    assert TrustStore.open(tmp_path).key_of("p1") is None


# ---------------------------------------------------------------- message signatures


class SignCounter:
    """An identity that counts its signatures (and signs with the real key)."""

    def __init__(self, identity: Identity) -> None:
        self.identity, self.calls = identity, 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self.identity.sign(data)

    def __getattr__(self, name: str):
        return getattr(self.identity, name)


def make_trust(tmp_path: Path, peer_id: str) -> Trust:
    return Trust.open(tmp_path / peer_id, peer_id)


def test_message_signatures_cover_every_field(tmp_path: Path) -> None:
    alice, bob = make_trust(tmp_path, "alice"), make_trust(tmp_path, "bob")
    msg = replace(Message.chat("Alice", "pay Bob 5", "alice"), hlc="0000000000a1.0000.alice", seq=1)
    sig = alice.sig_for(msg)
    assert bob.check_message(msg, sig) == UNVERIFIED  # never met alice: kept, marked
    assert bob.message_status(msg) == UNVERIFIED
    bob.store.check("alice", alice.identity.public_key, "Alice")  # now bob knows alice's key
    assert bob.message_status(msg) == VERIFIED  # the stored signature is checked late
    assert bob.check_message(msg, sig) == VERIFIED
    for field, value in [("text", "pay Bob 500"), ("author", "Bob"), ("seq", 2),
                         ("channel", "x"), ("hlc", "0000000000a2.0000.alice"), ("ts", 1.0)]:
        assert bob.check_message(replace(msg, **{field: value}), sig) == REFUSED, field
    assert bob.check_message(msg, "") == REFUSED  # a known origin must sign
    assert bob.sig_for(msg) == sig  # relays hand the proof on
    # Nobody else can write as bob either, even bob's own copy coming back.
    assert bob.check_message(replace(msg, origin="bob"), sig) == REFUSED


def test_own_signatures_are_kept_for_catch_up_and_survive_restart(tmp_path: Path) -> None:
    """A peer serving its own history signs each plain message once, not once per catch-up;
    a message with conversation fields (here an edit) is signed afresh each time."""
    from fletchat.conversation.fields import ConvFields

    alice, bob = make_trust(tmp_path, "alice"), make_trust(tmp_path, "bob")
    bob.store.check("alice", alice.identity.public_key, "Alice")
    plain = [replace(Message.chat("Alice", f"hi {i}", "alice"),
                     hlc=f"0000000000a{i}.0000.alice", seq=i + 1) for i in range(3)]
    edit = Message("e1", "edit", "Alice", "alice", "hi again", 1795578257.0, "general",
                   "0000000000b0.0000.alice", 4, conv=ConvFields(target=plain[0].id))
    alice.identity = counted = SignCounter(alice.identity)  # the real key; signs counted
    first = alice.sigs_for([*plain, edit])
    assert counted.calls == 4
    assert alice.sigs_for([*plain, edit]) == first and counted.calls == 5  # only the edit again
    for m, sig in zip([*plain, edit], first, strict=True):
        assert bob.check_message(m, sig) == VERIFIED
    assert alice.sig_for(plain[0]) == first[0]  # the live path signs the same bytes
    alice.close()
    again = Trust.open(tmp_path / "alice", "alice")
    again.identity = counted = SignCounter(again.identity)
    assert again.sigs_for(plain) == first[:3] and counted.calls == 0  # kept on disk


def test_canonical_bytes_are_stable_across_json_round_trips() -> None:
    msg = Message("id1", "chat", "Zoë", "o", "ünï 🎉\nx", 1795578257.79, "general", "", 3)
    again = decode_frame(encode_msg(msg)).message
    assert message_signing_bytes(again) == message_signing_bytes(msg)


def test_signature_book_survives_restart(tmp_path: Path) -> None:
    book = SignatureBook(tmp_path / "s.db")
    book.put("m1", "o", b"s" * 64, verified=False)
    book.put("m1", "o", b"s" * 64, verified=True)
    book.put("m1", "o", b"s" * 64, verified=False)  # never downgraded
    book.close()
    assert SignatureBook(tmp_path / "s.db").get("m1") == (b"s" * 64, True)


# ---------------------------------------------------------------- the secured mesh


class Node:
    def __init__(self, tmp_path: Path, peer_id: str, name: str = "", **options) -> None:
        self.id = peer_id
        self.trust = make_trust(tmp_path, peer_id)
        self.host = RecordingHost()
        self.msgs = self.host.msgs
        self.ups = self.host.ups
        self.warnings = self.host.warnings
        opts = {**FAST, **options}
        slots = {k: opts.pop(k) for k in list(opts) if k.startswith("max_")}
        settings = MeshSettings(host=LOOPBACK, slots=SlotLimits(**slots), **opts)
        self.mesh = Mesh(Peer(peer_id, name or peer_id.capitalize()), self.host, settings,
                         self.trust)

    @property
    def history(self) -> list[Message]:  # what it sends a newcomer in sync frames
        return self.host.history

    @history.setter
    def history(self, msgs: list[Message]) -> None:
        self.host.history = list(msgs)

    @property
    def port(self) -> int:
        return self.mesh.port

    def connected(self) -> set[str]:
        return {p.id for p in self.mesh.peers()}

    def texts(self) -> list[str]:
        return [m.text for m, _ in self.msgs]

    def dial(self, other: Node) -> None:
        self.mesh.add_peer_address(LOOPBACK, other.port)


@pytest.fixture
async def nodes(tmp_path):
    async for make in node_pool(lambda peer_id, **options: Node(tmp_path, peer_id, **options)):
        yield make


async def test_peers_authenticate_over_tls_and_see_each_others_fingerprint(nodes):
    a, b = await nodes("a"), await nodes("b")
    a.dial(b)
    await eventually(lambda: a.connected() == {"b"} and b.connected() == {"a"}, "a and b meet")
    seen_b = a.mesh.peers()[0]
    assert seen_b.fingerprint == b.trust.fingerprint
    assert b.mesh.peers()[0].fingerprint == a.trust.fingerprint
    conn = a.mesh._registry.handles()[0]
    assert conn.ws.transport.get_extra_info("ssl_object").version() == "TLSv1.3"
    assert a.trust.store.known() == {"b": b.trust.fingerprint}

    a.mesh.broadcast(chat("signed hello", "a"))
    await eventually(lambda: b.texts() == ["signed hello"], "b got it")


async def test_relayed_messages_keep_their_signature_and_forgeries_are_dropped(nodes):
    a, b = await nodes("a"), await nodes("b")
    a.dial(b)
    await eventually(lambda: b.connected() == {"a"}, "a and b meet")
    original = chat("from a via b", "a")
    a.mesh.broadcast(original)
    await eventually(lambda: b.texts() == ["from a via b"], "b got it")
    got, _ = b.msgs[0]
    await a.mesh.stop()
    # c met a once (knows its key) but a is gone: c hears a's message only from b, in the
    # sync b sends a newcomer, with a's signature carried along.
    c = await nodes("c")
    c.trust.store.check("a", a.trust.identity.public_key, "A")
    forged = chat("forged by b", "a")  # b writes "as a": no valid signature from a
    stranger = chat("from a stranger", "zed")  # an origin c never met
    b.history = [got, forged, stranger]
    c.dial(b)
    await eventually(lambda: "from a stranger" in c.texts(), "c got b's sync")
    assert [(m.text, sender) for m, sender in c.msgs] == [
        ("from a via b", "b"), ("from a stranger", "b"),
    ]
    assert c.trust.message_status(got) == VERIFIED
    assert c.trust.message_status(stranger) == UNVERIFIED


async def test_a_peers_own_messages_are_vouched_for_by_its_connection_and_checked_next_hop(nodes):
    """b has a's messages from a's own connection: verified by that connection (its handshake
    proved a's key), their signatures kept as they came, unchecked. c gets them from b and checks
    each: a's genuine message verifies; one a sent with a signature that does not match is
    refused there, and b is told why. A peer cannot push a bad signature past its neighbours."""
    a, b = await nodes("a"), await nodes("b")
    a.dial(b)
    await eventually(lambda: b.connected() == {"a"}, "a and b meet")
    good, bad = chat("signed by a", "a"), chat("a's words, signed wrong", "a")
    signs = a.trust.sig_for
    a.trust.sig_for = lambda m: signs(good) if m.id == bad.id else signs(m)  # type: ignore
    a.mesh.broadcast(good)
    a.mesh.broadcast(bad)
    await eventually(lambda: len(b.msgs) == 2, "b got both from a")
    assert b.host.verified == {good.id: True, bad.id: True}  # a's connection vouches
    assert b.trust.book.get(bad.id) == (decode_b64(signs(good)), False)  # kept, unchecked
    assert b.trust.message_status(bad) == REFUSED  # what anyone checking it finds
    await a.mesh.stop()
    c = await nodes("c")
    c.trust.store.check("a", a.trust.identity.public_key, "A")
    b.history = [m for m, _ in b.msgs]
    c.dial(b)
    await eventually(lambda: any(bad.id in dict(r) for _, r in b.host.refusals),
                     "b was told why c refused a's badly signed message")
    assert c.texts() == ["signed by a"] and c.host.verified == {good.id: True}


async def test_catch_up_pages_are_each_verified_before_judged_and_a_forgery_is_refused(nodes):
    """A catch-up of several pages: each page's signatures are checked on a worker thread while
    the page before it is judged; every message still arrives verified and in order, and the
    one forged message in the middle page is refused, its reason said to the sender."""
    a, b = await nodes("a"), await nodes("b")
    written = [chat(f"a {i} " + "x" * 1500, "a") for i in range(99)]  # 100 with the forgery: 3 pages
    for m in written:  # b caught these up from a earlier: a's signatures in b's book
        b.trust.book.put(m.id, "a", decode_b64(a.trust.sig_for(m)), verified=True)
    forged = chat("forged by b " + "x" * 1500, "a")  # "from a", without a's signature
    b.history = written[:50] + [forged] + written[50:]
    await a.mesh.stop()
    c = await nodes("c")
    c.trust.store.check("a", a.trust.identity.public_key, "A")
    c.dial(b)
    await eventually(lambda: len(c.msgs) == 99, "c caught up from b", 30.0)
    assert [m.id for m, _ in c.msgs] == [m.id for m in written]
    assert all(c.trust.message_status(m) == VERIFIED for m in written[::20])
    await eventually(lambda: any(forged.id in dict(r) for _, r in b.host.refusals),
                     "b was told why the forgery was refused")


async def test_a_known_id_with_another_key_is_refused_loudly_until_forgotten(
    nodes, tmp_path, caplog
):
    a = await nodes("a")
    b = await nodes("b")
    a.dial(b)
    await eventually(lambda: a.connected() == {"b"}, "first contact")
    old_fp = b.trust.fingerprint
    await b.mesh.stop()
    # An impostor: same peer id "b", another key (another data dir).
    impostor = Node(tmp_path / "elsewhere", "b", name="Bob")
    await impostor.mesh.start()
    try:
        with caplog.at_level(logging.ERROR, "fletchat.mesh"):
            impostor.dial(a)
            await eventually(lambda: a.warnings, "a warns")
            await never_within(
                lambda: len(a.warnings) > 1 or "b" in a.connected() or "b" in impostor.connected(),
                "a second warning, or the impostor got in",
                0.5,
            )
        assert a.warnings == [("b", "Bob", old_fp, impostor.trust.fingerprint)]
        assert "b" not in a.connected() and "b" not in impostor.connected()
        assert "IDENTITY WARNING" in caplog.text and old_fp in caplog.text
        assert a.trust.store.key_of("b") == b.trust.identity.public_key
        # Reset (the two people compared fingerprints): the new key is trusted on first use.
        a.trust.store.forget("b")
        await eventually(lambda: a.connected() == {"b"}, "accepted after forget", timeout=10)
        assert a.mesh.peers()[0].fingerprint == impostor.trust.fingerprint
    finally:
        await impostor.mesh.stop()
        impostor.trust.close()


async def test_blocked_peer_is_dropped_refused_and_its_relayed_messages_ignored(nodes):
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    a.dial(b)
    b.dial(c)
    # (gossip may already have made a and c meet: the chain is what matters here)
    await eventually(lambda: "b" in a.connected() and {"a", "c"} <= b.connected(), "chain")
    a.mesh.block("b", "Bob")
    await eventually(lambda: "b" not in a.connected() and "a" not in b.connected(), "dropped")
    assert a.trust.store.blocked() == {"b": "Bob"}
    b.dial(a)  # b tries again: refused at the handshake
    await never_within(lambda: "b" in a.connected(), "the blocked peer got in", 1.0)
    # Messages b wrote never reach a, even relayed by c (gossip made a and c meet).
    c.dial(a)
    await eventually(lambda: a.connected() == {"c"}, "a and c meet")
    c.mesh.broadcast(chat("b says hi", "b"))
    c.mesh.broadcast(chat("c says hi", "c"))
    await eventually(lambda: "c says hi" in a.texts(), "c's message arrives")
    await never_within(lambda: "b says hi" in a.texts(), "a blocked peer's message arrived", 0.2)
    # Persisted: a restarted mesh on the same data dir refuses b too.
    assert TrustStore.open(a.trust.store.path.parent).is_blocked("b")


async def test_plain_websocket_and_old_tls_are_refused(nodes):
    a = await nodes("a")
    with pytest.raises((InvalidMessage, OSError, ConnectionClosed, EOFError)):
        async with connect(f"ws://{LOOPBACK}:{a.port}/", open_timeout=scaled(2)) as ws:
            await ws.recv()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, OSError)):
        async with connect(f"wss://{LOOPBACK}:{a.port}/", ssl=old, open_timeout=scaled(2)):
            pass


async def raw_client(a: Node, hello: Hello):
    ws = await connect(f"wss://{LOOPBACK}:{a.port}/", ssl=Identity.client_context())
    await ws.send(encode_frame(hello))
    theirs = decode_frame(await ws.recv())
    assert isinstance(theirs, Hello) and theirs.key
    assert isinstance(decode_frame(await ws.recv()), Auth)
    return ws, theirs


async def test_hello_without_key_or_with_a_wrong_proof_is_refused(nodes, tmp_path):
    a = await nodes("a")
    ws = await connect(f"wss://{LOOPBACK}:{a.port}/", ssl=Identity.client_context())
    await ws.send(encode_frame(Hello("raw", "Raw", "desktop", 0, "0.1.0", "s", 1)))
    assert isinstance(decode_frame(await ws.recv()), Hello)
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd.code == 1008 and "without a key" in info.value.rcvd.reason

    # A proof signed for another TLS channel (what a man in the middle would relay) fails.
    mallory = Identity.load_or_create(tmp_path / "mallory")
    nonce = secrets.token_hex(16)
    hello = Hello("mal", "Mal", "desktop", 0, "0.1.0", "s", 1, mallory.key_text, nonce)
    ws, theirs = await raw_client(a, hello)
    wrong = auth_transcript(
        role="client", signer_id="mal", signer_key=mallory.key_text, other_id="a",
        server_cert_sha256="00" * 32, client_nonce=nonce, server_nonce=theirs.nonce,
    )
    await ws.send(encode_auth(mallory.sign(wrong)))
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd.code == 1008 and "authentication failed" in info.value.rcvd.reason
    assert a.connected() == set()


async def test_too_many_peers_are_refused(nodes):
    a = await nodes("a", max_peers=1)
    b, c = await nodes("b"), await nodes("c")
    b.dial(a)
    await eventually(lambda: a.connected() == {"b"}, "first peer")
    c.dial(a)
    # c keeps trying (and briefly counts a as up, until a's refusal arrives); a never takes it.
    await never_within(lambda: a.connected() != {"b"}, "a took a peer over its limit", 1.0)


async def test_when_sockets_are_full_the_oldest_silent_one_makes_room(nodes):
    a = await nodes("a", max_connections=2)
    socks = []
    for _ in range(2):
        socks.append(await connect(f"wss://{LOOPBACK}:{a.port}/", ssl=Identity.client_context()))
        assert isinstance(decode_frame(await socks[-1].recv()), Hello)
    extra = await connect(f"wss://{LOOPBACK}:{a.port}/", ssl=Identity.client_context())
    assert isinstance(decode_frame(await extra.recv()), Hello)  # the newcomer is served
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await socks[0].recv()
    assert info.value.rcvd.code == 1013 and "making room" in info.value.rcvd.reason
    for s in [*socks, extra]:
        await s.close()


# ---------------------------------------------------------------- hub hooks


def test_replies_new_channels_and_renames_pay_the_same_send_budget() -> None:
    """Each posts a stored message every device gets: replies (full chat messages) went around
    the send limit, and a tab could make channels and renames without bound."""
    hub = Hub("p", session_rate=(0.01, 20.0))
    s = HubSession(hub)
    s.join("Ann")
    parent = s.send("the first")  # 1
    assert parent is not None
    for i in range(15):  # 16
        assert s.reply(parent, f"re {i}", "general") is not None
    for i in range(3):  # 19
        s.create_channel(f"room-{i}")
    s.create_channel("room-0")  # opening one that exists posts nothing: free
    s.rename("Annie")  # 20
    for spent in (lambda: s.reply(parent, "one too many", "general"),
                  lambda: s.create_channel("room-9"), lambda: s.rename("Anna"),
                  lambda: s.send("and this")):
        with pytest.raises(ValidationError, match="You are sending too fast"):
            spent()
    assert "room-9" not in hub.channels() and s.name == "Annie"


def test_a_device_creates_at_most_max_local_channels(monkeypatch) -> None:
    """A host's tabs post without the LAN's per-origin quota: throw-away tabs could make
    channels without end, each one redrawing every tab's list."""
    from fletchat import session as session_module

    monkeypatch.setattr(session_module, "MAX_LOCAL_CHANNELS", 5)
    hub = Hub("p")
    s = HubSession(hub)
    s.join("Ann")
    s.direct_channel("Bob")  # direct messages do not count
    made = [s.create_channel(f"room-{i}") for i in range(4)]  # with #general: 5
    with pytest.raises(ValidationError, match="5 channels already"):
        s.create_channel("one-more")
    assert s.create_channel(made[0]) == made[0]  # opening one that exists still works
    assert "one-more" not in hub.channels()


def test_session_rate_limit_says_too_fast_and_spares_others() -> None:
    # A token every 100 s: however slowly a loaded machine runs the 21 sends, none comes back.
    hub = Hub("p", session_rate=(0.01, 20.0))
    s = HubSession(hub)
    s.join("Ann")
    for i in range(20):
        s.send(f"m{i}")
    with pytest.raises(ValidationError, match="You are sending too fast"):
        s.send("one too many")
    # Another person on the same host is not affected.
    other = HubSession(hub)
    other.join("Bob")
    assert other.send("hi") is not None
    # The headless peer (a script its owner runs) is exempt.
    bot = HubSession(hub, device="headless")
    bot.join("Bot")
    for i in range(50):
        bot.send(f"b{i}")


async def test_hub_block_forget_and_identity_warning_event(tmp_path):
    hub = Hub("a", trust=make_trust(tmp_path, "a"))
    events: list = []
    hub.add_listener(events.append)
    hub.identity_warning("b", "Bob", "AAAA-AAAA-AAAA-AAAA", "BBBB-BBBB-BBBB-BBBB")
    assert isinstance(events[-1], IdentityWarning) and events[-1].new_fingerprint.startswith("B")
    assert hub.identity_warnings()[0].peer_id == "b"
    hub.trust.store.check("b", bytes(32), "Bob")
    assert hub.peer_fingerprint("b") == fingerprint(bytes(32))
    assert hub.forget_peer("b") and hub.identity_warnings() == []
    hub.block("spam")  # no mesh (no LAN): still persisted
    assert hub.blocked_peers() == {"spam": ""}
    hub.unblock("spam")
    assert hub.blocked_peers() == {}
    assert hub.fingerprint == hub.trust.fingerprint
    hub.peer_up(Peer("b", "Bob", fingerprint="CCCC-CCCC-CCCC-CCCC"))
    assert hub.lan_peers()[0].fingerprint == "CCCC-CCCC-CCCC-CCCC"
    hub.trust.close()


def test_hub_reports_what_it_took_as_verified_without_checking_again(tmp_path: Path) -> None:
    """A message the hub took as verified (here: vouched for by its writer's connection, its
    signature kept unchecked and in fact wrong) reads "verified" in the views and the headless
    lines at once: no signature check per row shown. What the hub took as unverified stays so."""
    hub = Hub("h", trust=make_trust(tmp_path, "h"))
    alice = make_trust(tmp_path, "alice")
    hub.trust.store.check("alice", alice.identity.public_key, "Alice")
    msg = replace(Message.chat("Alice", "hi", "alice"), hlc=HLC("alice").now().encode(), seq=1)
    other = replace(msg, id="m2", text="another")
    hub.trust.book.put(msg.id, "alice", decode_b64(alice.sig_for(other)), verified=False)
    assert hub.receive(msg, "alice", verified=True).stored
    assert hub.message_status(msg) == "verified"
    assert hub.trust.message_status(msg) == REFUSED  # what a check of its signature finds
    stranger = replace(Message.chat("Zed", "who", "zed"), hlc=HLC("zed").now().encode(), seq=1)
    assert hub.receive(stranger, "alice", verified=False).stored
    assert hub.message_status(stranger) == "unverified"
    hub.close()
    hub.trust.close()


def test_trust_json_never_holds_private_material(tmp_path: Path) -> None:
    t = make_trust(tmp_path, "a")
    t.store.check("b", bytes(32), "B")
    t.close()
    assert "PRIVATE" not in (tmp_path / "a" / "trust.log").read_text()
    TrustStore.open(tmp_path / "a").close()  # compacts the journal into the snapshot
    data = json.loads((tmp_path / "a" / "trust.json").read_text())
    assert set(data) == {"known", "blocked"} and set(data["known"]) == {"b"}
    assert "PRIVATE" not in (tmp_path / "a" / "trust.json").read_text()


async def test_hub_block_goes_through_the_mesh(nodes):
    a, b = await nodes("a"), await nodes("b")
    hub = Hub("a", trust=a.trust, transport=a.mesh)
    a.dial(b)
    await eventually(lambda: a.connected() == {"b"}, "connected")
    hub.peer_up(a.mesh.peers()[0])
    hub.block("b")
    await eventually(lambda: a.connected() == set() and b.connected() == set(), "dropped")
    assert hub.blocked_peers() == {"b": "B"}
    hub.unblock("b")
    assert not a.mesh.is_blocked("b")
    b.dial(a)
    await eventually(lambda: a.connected() == {"b"}, "welcome again after unblock")
