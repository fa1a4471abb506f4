"""The sans-I/O peer connection, driven frame by frame without sockets (real keys and signatures).

Every hostile handshake is a row: what the stranger sends, the close code and reason it gets, and
that nothing (no ``Opened``, no message) came out of the connection.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fletchat.clock import HLC
from fletchat.identity import Identity
from fletchat.model import Message, Peer
from fletchat.peer.connection import (
    Closed,
    IdentityChanged,
    Limits,
    Local,
    Messages,
    Opened,
    PeerConnection,
    State,
    TlsFacts,
    check_signatures,
)
from fletchat.peer.policy import NoTrust
from fletchat.protocol import (
    PEER_PROTOCOL_VERSION,
    Auth,
    Hello,
    Pong,
    auth_transcript,
    decode_b64,
    decode_frame,
    encode_auth,
    encode_b64,
    encode_bye,
    encode_frame,
    encode_msg,
    encode_ping,
    encode_sync,
)
from fletchat.trust import FirstContacts, Trust

NOW = 1_800_000_000.0
ADDR = "192.0.2.9"


@dataclass
class Side:
    """One end's identity and trust, and the TLS certificate it would present as a server."""

    trust: Trust
    peer: Peer

    @property
    def cert_sha(self) -> str:
        return hashlib.sha256(self.trust.identity.cert_der).hexdigest()


def side(tmp_path: Path, peer_id: str) -> Side:
    return Side(Trust.open(tmp_path / peer_id, peer_id), Peer(peer_id, peer_id.capitalize()))


def acceptor(s: Side, **kw) -> PeerConnection:
    """``s`` accepting a connection (the TLS server): the proof binds its own certificate."""
    return PeerConnection(
        Local(s.peer, 7000, "srv-session"), False, ADDR, s.trust, secrets.token_hex(16), NOW,
        TlsFacts(s.cert_sha), **kw,
    )


def dialer(s: Side, server: Side, **kw) -> PeerConnection:
    tls = TlsFacts(server.cert_sha, server.trust.identity.public_key)
    return PeerConnection(
        Local(s.peer, 7001, "cli-session", dial=3), True, ADDR, s.trust, secrets.token_hex(16),
        NOW, tls, **kw,
    )


def pump(a: PeerConnection, b: PeerConnection) -> tuple[list, list]:
    """Move frames both ways until both are quiet; the events each side produced."""
    ev_a: list = []
    ev_b: list = []
    for _ in range(20):
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            break
        for f in out_a:
            ev_b += b.receive_text(f, NOW + 1)
        for f in out_b:
            ev_a += a.receive_text(f, NOW + 1)
    return ev_a, ev_b


def test_two_honest_peers_authenticate_and_open(tmp_path):
    a, b = side(tmp_path, "a"), side(tmp_path, "b")
    server, client = acceptor(a), dialer(b, a)
    ev_server, ev_client = pump(server, client)
    assert server.state is State.OPEN and client.state is State.OPEN
    (up_s,) = ev_server
    (up_c,) = ev_client
    assert isinstance(up_s, Opened) and up_s.peer.id == "b" and up_s.first_contact
    assert up_s.peer.fingerprint == b.trust.fingerprint and up_s.peer.host == ADDR
    assert up_c.peer.fingerprint == a.trust.fingerprint
    assert up_s.key == up_c.key.__class__("b", "cli-session", 3)  # both agree who dialed
    assert a.trust.store.known() == {"b": b.trust.fingerprint}


def test_plain_mesh_opens_on_hello_alone():
    srv = PeerConnection(Local(Peer("a", "A"), 1, "s"), False, ADDR, NoTrust(), "", NOW)
    cli = PeerConnection(Local(Peer("b", "B"), 2, "t", 1), True, ADDR, NoTrust(), "", NOW)
    ev_s, ev_c = pump(srv, cli)
    assert [type(e) for e in ev_s] == [Opened] == [type(e) for e in ev_c]
    assert srv.sender is None and cli.sender is None  # nobody proved a key: nobody vouched for
    assert "key" not in json.loads(cli.data_to_send()[0] if cli.backlog() else '{"v":2}')


# ---------------------------------------------------------------- hostile handshakes


@dataclass(frozen=True)
class Row:
    """What a stranger ("mal") sends to ``a`` (accepting), and how ``a`` must end it."""

    frames: Callable[[Side, Side, Hello], list[str | bytes]]
    code: int
    reason: str


def mal_hello(mal: Side, nonce: str = "ab" * 16, peer_id: str = "mal", key: str | None = None):
    return Hello(peer_id, "Mal", "desktop", 0, "0.1.0", "mal-session", 1,
                 mal.trust.key_text if key is None else key, nonce)


def mal_auth(mal: Side, a: Side, theirs: Hello, **override) -> str:
    fields = {
        "role": "client", "signer_id": "mal", "signer_key": mal.trust.key_text, "other_id": "a",
        "server_cert_sha256": a.cert_sha, "client_nonce": "ab" * 16,
        "server_nonce": theirs.nonce,
    }
    fields.update(override)
    return encode_auth(mal.trust.sign(auth_transcript(**fields)))


def _msg() -> Message:
    return Message.chat("Mal", "hi", "mal")


HOSTILE = {
    "message before hello": Row(lambda m, a, h: [encode_msg(_msg())], 1002, "expected hello first"),
    "binary frame": Row(lambda m, a, h: [b"\x00\x01"], 1003, "binary"),
    "invalid json": Row(lambda m, a, h: ["{nope"], 1002, "invalid JSON"),
    "old protocol version": Row(
        lambda m, a, h: [json.dumps({"v": 1, "type": "ping"})], 1002, "unsupported protocol"
    ),
    "claims our own id": Row(
        lambda m, a, h: [encode_frame(mal_hello(m, peer_id="a"))], 1000, "self"
    ),
    "blocked id": Row(lambda m, a, h: [encode_frame(mal_hello(m, peer_id="spam"))], 1008,
                      "blocked"),
    "hello without a key": Row(
        lambda m, a, h: [encode_frame(replace(mal_hello(m), key="", nonce=""))], 1008,
        "without a key",
    ),
    "auth for another TLS channel (MITM relay)": Row(
        lambda m, a, h: [encode_frame(mal_hello(m)), mal_auth(m, a, h, server_cert_sha256="00" * 32)],
        1008, "authentication failed",
    ),
    "auth signed in the server's role": Row(
        lambda m, a, h: [encode_frame(mal_hello(m)), mal_auth(m, a, h, role="server")],
        1008, "authentication failed",
    ),
    "auth replayed from another connection": Row(
        lambda m, a, h: [encode_frame(mal_hello(m)), mal_auth(m, a, h, server_nonce="cd" * 16)],
        1008, "authentication failed",
    ),
    "auth naming another receiver": Row(
        lambda m, a, h: [encode_frame(mal_hello(m)), mal_auth(m, a, h, other_id="zed")],
        1008, "authentication failed",
    ),
    "key in hello is not the signer's": Row(
        lambda m, a, h: [
            encode_frame(mal_hello(m, key=a.trust.key_text)),
            mal_auth(m, a, h, signer_key=a.trust.key_text),
        ],
        1008, "authentication failed",
    ),
    "second hello instead of auth": Row(
        lambda m, a, h: [encode_frame(mal_hello(m)), encode_frame(mal_hello(m))],
        1002, "expected auth after hello",
    ),
    "message instead of auth": Row(
        lambda m, a, h: [encode_frame(mal_hello(m)), encode_msg(_msg())],
        1002, "expected auth after hello",
    ),
    "auth first": Row(
        lambda m, a, h: [encode_frame(Auth("A" * 86 + "=="))], 1002, "expected hello first"
    ),
    "unknown frame type": Row(
        lambda m, a, h: [json.dumps({"v": PEER_PROTOCOL_VERSION, "type": "shout"})], 1002,
        "unknown frame type",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_handshakes_are_closed_with_a_reason_and_yield_nothing(tmp_path, case):
    row = HOSTILE[case]
    a, mal = side(tmp_path, "a"), side(tmp_path, "mal")
    a.trust.block("spam")
    conn = acceptor(a)
    theirs = decode_frame(conn.data_to_send()[0])  # a speaks first: its hello
    assert isinstance(theirs, Hello) and theirs.key
    events: list = []
    for frame in row.frames(mal, a, theirs):
        events += conn.receive_text(frame, NOW)
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1, events
    assert closed[0].code == row.code and row.reason in closed[0].reason
    assert conn.state is State.CLOSED and conn.peer is None
    assert not any(isinstance(e, (Opened, Messages)) for e in events)
    assert "mal" not in a.trust.store.known()  # nothing half-trusted
    assert conn.receive_text(encode_msg(_msg()), NOW) == []  # CLOSED stays closed


def test_a_known_id_with_another_key_is_refused_with_a_warning(tmp_path):
    a, b, impostor = side(tmp_path, "a"), side(tmp_path, "b"), side(tmp_path / "x", "b")
    pump(acceptor(a), dialer(b, a))  # first contact: a knows b's key
    ev_server, _ = pump(acceptor(a), dialer(impostor, a))
    assert [type(e) for e in ev_server] == [IdentityChanged, Closed]
    warning, closed = ev_server
    assert (warning.old_fingerprint, warning.new_fingerprint) == (
        b.trust.fingerprint, impostor.trust.fingerprint,
    )
    assert (closed.code, closed.reason) == (1008, "identity key changed")
    assert a.trust.store.key_of("b") == b.trust.identity.public_key


def test_first_contacts_beyond_the_per_address_limit_are_told_to_try_later(tmp_path):
    a = side(tmp_path, "a")
    a.trust.store._contacts = FirstContacts(per_address=2, total=100)
    outcomes = []
    for i in range(3):
        ev, _ = pump(acceptor(a), dialer(side(tmp_path, f"throwaway{i}"), a))
        outcomes.append(type(ev[-1]).__name__ if ev else "")
    assert outcomes == ["Opened", "Opened", "Closed"]
    ev, _ = pump(acceptor(a), dialer(side(tmp_path, "late"), a))
    assert (ev[-1].code, "try again later" in ev[-1].reason) == (1013, True)


def test_the_dialer_refuses_a_server_whose_certificate_is_not_its_key(tmp_path):
    a, b, other = side(tmp_path, "a"), side(tmp_path, "b"), side(tmp_path, "other")
    server = acceptor(a)
    client = PeerConnection(
        Local(b.peer, 1, "s", 1), True, ADDR, b.trust, secrets.token_hex(16), NOW,
        TlsFacts(other.cert_sha, other.trust.identity.public_key),  # what a MITM presents
    )
    _, ev_client = pump(server, client)
    assert isinstance(ev_client[-1], Closed) and "TLS certificate" in ev_client[-1].reason
    assert client.state is State.CLOSED


# ---------------------------------------------------------------- an open connection


def opened(tmp_path, **limits) -> tuple[Side, Side, PeerConnection, PeerConnection]:
    a, b = side(tmp_path, "a"), side(tmp_path, "b")
    server, client = acceptor(a, limits=Limits(**limits)), dialer(b, a)
    pump(server, client)
    assert server.state is State.OPEN
    return a, b, server, client


def stamped(origin: str, text: str, seq: int) -> Message:
    return replace(Message.chat(origin.capitalize(), text, origin),
                   hlc=HLC(origin).now().encode(), seq=seq)


def test_signed_messages_are_verified_forgeries_and_unstamped_ones_refused(tmp_path):
    _, b, server, _ = opened(tmp_path)
    c = side(tmp_path, "c")  # another device a knows, that b can only claim to be
    server.trust.check_key("c", c.trust.identity.public_key, "C", ADDR, NOW)
    good = stamped("b", "hello", 1)
    sig = b.trust.sig_for(good)
    (ev,) = server.receive_text(encode_msg(good, sig), NOW + 2)
    assert isinstance(ev, Messages) and ev.live and [r.verified for r in ev.items] == [True]
    as_c = stamped("c", "send me money", 1)  # "from c", signed by b: refused
    (ev,) = server.receive_text(encode_msg(as_c, b.trust.sig_for(as_c)), NOW + 2)
    assert ev.items == () and ev.refused[0][0] == as_c.id and "signature" in ev.refused[0][1]
    c_signed = c.trust.sig_for(as_c)  # c's own signature, relayed by b: verified
    (ev,) = server.receive_text(encode_msg(as_c, c_signed), NOW + 2)
    assert [(r.message.id, r.verified) for r in ev.items] == [(as_c.id, True)]
    unstamped = replace(good, id="u1", hlc="", seq=0)
    (ev,) = server.receive_text(encode_msg(unstamped, b.trust.sig_for(unstamped)), NOW + 2)
    assert ev.items == () and "hlc and seq" in ev.refused[0][1]
    stranger = stamped("zed", "who am I", 1)  # an origin a never met: kept, unverified
    (ev,) = server.receive_text(encode_sync([stranger])[0], NOW + 2)
    assert not ev.live and ev.items == ()  # a sync page: checked later, on a worker thread
    ev = check_signatures(server.trust, ev)
    assert [(r.message.id, r.verified) for r in ev.items] == [(stranger.id, False)]


def test_the_connection_vouches_for_its_peers_own_messages_not_for_others(tmp_path):
    """b's own message over b's connection is b's (the handshake proved b's key): verified
    without checking its signature, which is kept as it came, unchecked, for whoever gets the
    message from someone else; that receiver checks it and refuses a bad one. Unsigned, or
    once b's key is no longer the one trusted for b, the signature is checked as before."""
    _, b, server, _ = opened(tmp_path)
    assert server.sender is not None and server.sender.peer_id == "b"
    good = stamped("b", "hello", 1)
    bad = replace(good, id="f1", text="words b signed otherwise")  # b's words, wrong signature
    sig = b.trust.sig_for(good)
    (ev,) = server.receive_text(encode_msg(bad, sig), NOW + 2)
    assert [(r.message.id, r.verified) for r in ev.items] == [("f1", True)]
    assert server.trust.book.get("f1") == (decode_b64(sig), False)  # kept, not checked here
    relayed = check_signatures(server.trust, Messages((), True, (), ((bad, sig),)))
    assert relayed.items == () and "signature" in relayed.refused[0][1]  # a third party's view
    assert server.trust.message_status(bad) == "refused"
    (ev,) = server.receive_text(encode_msg(replace(good, id="n1"), ""), NOW + 2)
    assert ev.items == () and ev.refused[0][0] == "n1"  # unsigned from a known key: refused
    other_key = side(tmp_path / "y", "b").trust.identity.public_key
    server.trust.store._known["b"]["key"] = encode_b64(other_key)  # as if reset, then re-met
    (ev,) = server.receive_text(encode_msg(replace(bad, id="f2"), sig), NOW + 2)
    assert ev.items == () and "signature" in ev.refused[0][1]  # b's key is not trusted now


def test_sync_pages_are_checked_by_check_signatures_forgeries_refused(tmp_path):
    _, b, server, _ = opened(tmp_path)
    good = [stamped("b", f"page {i}", i + 1) for i in range(3)]
    sigs = {m.id: b.trust.sig_for(m) for m in good}
    forged = replace(good[1], id="f2", text="forged in a page")
    unstamped = replace(good[2], id="u3", hlc="", seq=0)
    sigs |= {"f2": sigs[good[1].id], "u3": b.trust.sig_for(unstamped)}
    page = [*good, forged, unstamped]
    (ev,) = server.receive_text(encode_sync(page, sig_for=lambda m: sigs[m.id])[0], NOW + 2)
    assert not ev.live and ev.items == () and [m.id for m, _ in ev.unchecked] == [
        m.id for m in [*good, forged]]
    assert [i for i, _ in ev.refused] == ["u3"]  # no stamp: refused at once
    checked = check_signatures(server.trust, ev)
    assert [(r.message.id, r.verified) for r in checked.items] == [(m.id, True) for m in good]
    assert [i for i, _ in checked.refused] == ["u3", "f2"] and not checked.unchecked
    assert "signature" in checked.refused[1][1]


def test_messages_inside_sync_frames_count_against_the_message_rate(tmp_path):
    _, _, server, _ = opened(tmp_path, messages_per_second=10, message_burst=150)
    batch = [stamped("zed", f"m{i}", i + 1) for i in range(100)]
    (first,) = server.receive_text(encode_sync(batch)[0], NOW + 2)
    assert len(first.unchecked) == 100
    (second,) = server.receive_text(encode_sync(batch)[0], NOW + 2)  # 200 > burst in one go
    assert isinstance(second, Closed) and second.code == 1008
    assert "messages/s" in second.reason and server.state is State.CLOSED


def test_ping_is_answered_bye_closes_and_close_request_says_bye(tmp_path):
    _, _, server, client = opened(tmp_path)
    server.receive_text(encode_ping(), NOW + 2)
    assert [type(decode_frame(f)) for f in server.data_to_send()] == [Pong]
    (ev,) = server.receive_text(encode_bye("lunch"), NOW + 3)
    assert (ev.code, ev.down_reason) == (1000, "left: lunch")
    client.close_request()
    assert client.state is State.CLOSED and client.close_code == 1001
    assert json.loads(client.data_to_send()[-1]) == {
        "v": PEER_PROTOCOL_VERSION, "type": "bye", "reason": "shutting down",
    }
    assert client.send("late") is False


def test_a_peer_that_does_not_read_is_dropped_as_too_slow(tmp_path):
    _, _, server, _ = opened(tmp_path, max_outbox=5)
    assert all(server.send(encode_ping()) for _ in range(5))
    assert server.send(encode_ping()) is False
    assert server.state is State.CLOSED and server.close_reason == "too slow: send queue full"


def test_a_second_hello_after_open_is_a_protocol_error(tmp_path):
    _, b, server, _ = opened(tmp_path)
    (ev,) = server.receive_text(encode_frame(mal_hello(b)), NOW + 2)
    assert (ev.code, ev.reason) == (1002, "unexpected second hello")


def test_the_acceptor_identity_is_real(tmp_path):
    # A sanity row for the fixtures above: the certificate hash is over the real DER.
    s = side(tmp_path, "a")
    assert s.cert_sha == hashlib.sha256(Identity.load_or_create(tmp_path / "a").cert_der).hexdigest()
