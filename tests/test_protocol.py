"""The wire format without sockets: round trips, every malformed case, and the small pure rules."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fletchat.model import MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, Message
from fletchat.protocol import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    MAX_GOSSIP_PEERS,
    MAX_SYNC_MESSAGES,
    PEER_PROTOCOL_VERSION,
    Bye,
    ConnKey,
    Hello,
    MsgFrame,
    PeerAddress,
    PeersFrame,
    Ping,
    Pong,
    ProtocolError,
    SyncFrame,
    TokenBucket,
    backoff_delay,
    decode_frame,
    encode_bye,
    encode_frame,
    encode_peers,
    encode_sync,
    gossip_host,
    keep_new_connection,
)

MSG = Message("m1", "chat", "Ada", "peer-a", "hello there", 1_700_000_000.5, "general")
HELLO = Hello("peer-a", "Ada", "desktop", 5000, "0.1.0", "sess1", 3)


def frame(**fields) -> str:
    return json.dumps({"v": PEER_PROTOCOL_VERSION, **fields})


def hello_dict(**over) -> dict:
    d = {
        "id": "peer-a",
        "name": "Ada",
        "device": "desktop",
        "port": 5000,
        "app": "0.1.0",
        "session": "s1",
        "dial": 0,
    }
    d.update(over)
    return d


def rejects(data: str | bytes, *words: str, code: int = CLOSE_PROTOCOL_ERROR) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_frame(data)
    for word in words:
        assert word in info.value.reason, info.value.reason
    assert info.value.code == code
    return info.value


# ---- round trips ----


@pytest.mark.parametrize(
    "f",
    [
        HELLO,
        Hello("x", "Bo Li", "android", 0, "1.2.3+dev", "s", 0),
        MsgFrame(MSG),
        MsgFrame(Message("j1", "join", "Ada", "peer-a", "", 5.0)),
        Ping(),
        Pong(),
        PeersFrame((PeerAddress("b", "192.168.1.7", 40000), PeerAddress("c", "fe80::1", 1))),
        PeersFrame(()),
        SyncFrame((MSG, Message("m2", "chat", "Bo", "peer-b", "ünïcødé 🎉\nline 2", 6.0))),
        Bye("quit"),
        Bye(""),
    ],
)
def test_round_trip(f):
    text = encode_frame(f)
    assert json.loads(text)["v"] == PEER_PROTOCOL_VERSION
    assert decode_frame(text) == f
    assert decode_frame(text.encode("utf-8")) == f


def test_wire_shape_is_documented_json():
    assert json.loads(encode_frame(HELLO)) == {
        "v": 2,
        "type": "hello",
        "id": "peer-a",
        "name": "Ada",
        "device": "desktop",
        "port": 5000,
        "app": "0.1.0",
        "session": "sess1",
        "dial": 3,
    }
    assert json.loads(encode_frame(MsgFrame(MSG))) == {"v": 2, "type": "msg", "msg": MSG.to_dict()}
    assert json.loads(encode_frame(Ping())) == {"v": 2, "type": "ping"}


def test_unknown_extra_fields_are_ignored():
    assert decode_frame(frame(type="ping", later_addition={"x": [1, 2]})) == Ping()


def test_largest_message_fits_one_frame():
    worst = Message("m", "chat", "A" * 32, "o", '"\\' * (MAX_MESSAGE_CHARS // 2), 1.0)
    assert decode_frame(encode_frame(MsgFrame(worst))) == MsgFrame(worst)


def test_encode_sync_keeps_the_newest_and_splits_by_size():
    big = [
        Message(f"m{i}", "chat", "Ada", "o", "😀" * MAX_MESSAGE_CHARS, float(i)) for i in range(150)
    ]
    frames = encode_sync(big)
    assert len(frames) > 1
    got = [m for f in frames for m in decode_frame(f).messages]
    assert got == big[-MAX_SYNC_MESSAGES:]
    assert all(len(f.encode()) <= MAX_FRAME_BYTES for f in frames)
    assert encode_sync([]) == []
    assert [m.id for m in decode_frame(encode_sync(big[:3])[0]).messages] == ["m0", "m1", "m2"]


def test_encode_peers_and_bye_are_bounded():
    many = [PeerAddress(f"p{i}", "10.0.0.1", 1000 + i) for i in range(200)]
    assert len(decode_frame(encode_peers(many)).peers) == MAX_GOSSIP_PEERS
    assert len(decode_frame(encode_bye("x" * 500)).reason) <= 100


# ---- malformed frames ----


def test_oversize_is_refused_before_parsing():
    # Not even JSON: the size check must come first.
    rejects("x" * (MAX_FRAME_BYTES + 1), "bytes", code=CLOSE_TOO_BIG)
    rejects(b"[" * (MAX_FRAME_BYTES + 1), "bytes", code=CLOSE_TOO_BIG)
    # Under the limit in characters, over it in UTF-8 bytes.
    rejects("é" * (MAX_FRAME_BYTES // 2 + 1), "bytes", code=CLOSE_TOO_BIG)


@pytest.mark.parametrize(
    "data, words",
    [
        ("{not json", ["invalid JSON"]),
        ("", ["invalid JSON"]),
        (b"\xff\xfe{}", ["UTF-8"]),
        ("[1, 2]", ["JSON object"]),
        ('"hello"', ["JSON object"]),
        ("null", ["JSON object"]),
        ('{"type": "ping"}', ["version"]),
        ('{"v": "1", "type": "ping"}', ["version"]),
        ('{"v": true, "type": "ping"}', ["version"]),
        ('{"v": 3, "type": "ping"}', ["unsupported protocol version 3", "speaks 2"]),
        ('{"v": 0, "type": "ping"}', ["unsupported protocol version 0"]),
        ('{"v": 2}', ["type"]),
        ('{"v": 2, "type": 7}', ["type"]),
        ('{"v": 2, "type": "shout"}', ["unknown frame type 'shout'"]),
        ('{"v": 2, "type": "ping", "x": NaN}', ["invalid JSON"]),
        ('{"v": 2, "type": "ping", "x": Infinity}', ["invalid JSON"]),
        ('{"v": 2, "type": "ping", "x": 1e400}', ["invalid JSON"]),
        ('{"v": 2, "type": "ping", "x": ' + "9" * 5000 + "}", ["invalid JSON"]),
        ('{"v": 2, "type": "ping", "x": ' + "[" * 5000 + "]" * 5000 + "}", ["nests"]),
        ('{"v": 2, "type": "ping", "x": ' + "[" * 30 + "]" * 30 + "}", ["nests"]),
        ('{"v": 2, "type": "ping", "x": "\\ud800"}', ["surrogate"]),
        ('{"v": 10000000000000000000000, "type": "ping"}', ["unsupported protocol version"]),
    ],
)
def test_malformed(data, words):
    rejects(data, *words)


@pytest.mark.parametrize(
    "over, words",
    [
        ({"id": ""}, ["hello.id"]),
        ({"id": "has space"}, ["hello.id"]),
        ({"id": 5}, ["hello.id"]),
        ({"name": "   "}, ["hello.name", "blank"]),
        ({"name": "x" * 33}, ["hello.name", "too long"]),
        ({"name": "a\x00b"}, ["hello.name", "control"]),
        ({"name": None}, ["hello.name"]),
        ({"device": "toaster"}, ["hello.device"]),
        ({"port": "5000"}, ["hello.port", "integer"]),
        ({"port": 70000}, ["hello.port"]),
        ({"port": -1}, ["hello.port"]),
        ({"port": True}, ["hello.port"]),
        ({"port": 5000.0}, ["hello.port"]),
        ({"app": "x" * 40}, ["hello.app"]),
        ({"app": None}, ["hello.app"]),
        ({"session": None}, ["hello.session"]),
        ({"dial": -1}, ["hello.dial"]),
        ({"dial": 2**60}, ["hello.dial"]),
    ],
)
def test_bad_hello(over, words):
    rejects(frame(type="hello", **hello_dict(**over)), *words)


def test_hello_missing_fields():
    d = hello_dict()
    del d["port"]
    rejects(frame(type="hello", **d), "hello.port")


@pytest.mark.parametrize(
    "msg, words",
    [
        (None, ["msg.msg", "object"]),
        ("text", ["msg.msg", "object"]),
        ({**MSG.to_dict(), "kind": "shout"}, ["kind"]),
        ({**MSG.to_dict(), "text": "x" * (MAX_MESSAGE_CHARS + 1)}, ["too long"]),
        ({**MSG.to_dict(), "text": "   "}, ["text"]),
        ({**MSG.to_dict(), "ts": "yesterday"}, ["timestamp"]),
        ({**MSG.to_dict(), "ts": 1e300}, ["timestamp"]),
        ({**MSG.to_dict(), "id": "../../etc"}, ["message id"]),
        ({**MSG.to_dict(), "author": ""}, ["blank"]),
        ({**MSG.to_dict(), "channel": ""}, ["channel"]),
    ],
)
def test_bad_msg(msg, words):
    rejects(frame(type="msg", msg=msg), *words)


SIG = base64.b64encode(bytes(range(64))).decode()  # 88 characters, ends in "=="
KEY = base64.b64encode(bytes(range(32))).decode()  # 44 characters, ends in "="


def test_canonical_signatures_and_keys_are_read():
    assert decode_frame(frame(type="auth", sig=SIG)).sig == SIG
    got = decode_frame(frame(type="msg", msg={**MSG.to_dict(), "sig": SIG}))
    assert got.sig == SIG
    hello = decode_frame(frame(type="hello", **hello_dict(key=KEY, nonce="0" * 32)))
    assert hello.key == KEY


@pytest.mark.parametrize(
    "spelling",
    [
        base64.b64encode(bytes(66)).decode(),  # 88 characters without padding: 66 bytes
        SIG[:85] + "B==",  # spare bits set: decodes, but is not the canonical spelling
    ],
)
def test_signatures_that_are_not_64_canonical_bytes_are_refused(spelling):
    assert len(spelling) == 88
    rejects(frame(type="auth", sig=spelling), "auth.sig")
    rejects(frame(type="msg", msg={**MSG.to_dict(), "sig": spelling}), "msg.sig")


@pytest.mark.parametrize("spelling", [base64.b64encode(bytes(33)).decode(), KEY[:42] + "B="])
def test_keys_that_are_not_32_canonical_bytes_are_refused(spelling):
    assert len(spelling) == 44
    rejects(frame(type="hello", **hello_dict(key=spelling, nonce="0" * 32)), "hello.key")


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"peers": "all"}, ["peers.peers", "list"]),
        ({}, ["peers.peers", "list"]),
        ({"peers": [1]}, ["objects"]),
        ({"peers": [{"id": "b", "host": "example.com", "port": 1}]}, ["peers.host"]),
        ({"peers": [{"id": "b", "host": "10.0.0.1", "port": 0}]}, ["peers.port"]),
        ({"peers": [{"id": "", "host": "10.0.0.1", "port": 1}]}, ["peers.id"]),
        (
            {"peers": [{"id": f"p{i}", "host": "10.0.0.1", "port": 1} for i in range(65)]},
            ["more than 64"],
        ),
        ({"msgs": {}}, ["sync.msgs", "list"]),
        ({"msgs": [MSG.to_dict()] * (MAX_SYNC_MESSAGES + 1)}, ["more than"]),
        ({"msgs": [MSG.to_dict(), {"kind": "chat"}]}, ["sync.msgs"]),
        ({"reason": 5}, ["bye.reason", "string"]),
        ({"reason": "x" * 101}, ["bye.reason", "longer"]),
        ({"reason": "a\x1bb"}, ["bye.reason", "control"]),
    ],
)
def test_bad_peers_sync_bye(fields, words):
    ftype = "peers" if "peers" in fields or not fields else "sync" if "msgs" in fields else "bye"
    rejects(frame(type=ftype, **fields), *words)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_decode_never_raises_anything_but_protocol_error_for_arbitrary_input(data):
    try:
        decode_frame(data)
    except ProtocolError:
        pass


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_field = st.sampled_from(
    ["id", "name", "device", "port", "app", "session", "dial", "msg", "peers", "msgs", "reason"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["hello", "msg", "ping", "pong", "peers", "sync", "bye", "other"]),
    st.dictionaries(_field, _json, max_size=8),
)
def test_decode_never_raises_anything_but_protocol_error_for_hostile_json(ftype, fields):
    data = json.dumps({"v": 2, "type": ftype, **fields})
    try:
        decode_frame(data)
    except ProtocolError:
        pass


# ---- pure rules ----


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=5, clock=lambda: now[0])
    assert all(bucket.allow() for _ in range(5))
    assert not bucket.allow()
    now[0] += 0.1  # one token back
    assert bucket.allow()
    assert not bucket.allow()
    now[0] += 100  # refills only up to the burst
    assert sum(bucket.allow() for _ in range(20)) == 5


def test_tie_break_both_sides_agree():
    # a and b dialed each other: both ends keep the one a (the smaller id) dialed.
    by_a = ConnKey(initiator="a", session="S", dial=1)
    by_b = ConnKey(initiator="b", session="S", dial=1)
    assert keep_new_connection(existing=by_b, new=by_a)
    assert not keep_new_connection(existing=by_a, new=by_b)


def test_tie_break_same_dialer_keeps_newest_and_restart_wins():
    old = ConnKey("a", "S", 1)
    assert keep_new_connection(old, ConnKey("a", "S", 2))
    assert not keep_new_connection(ConnKey("a", "S", 2), old)
    # The remote peer restarted: its new session replaces whatever was there.
    assert keep_new_connection(ConnKey("a", "S", 9), ConnKey("b", "T", 1))


def test_backoff_grows_caps_and_jitters():
    assert backoff_delay(0, 0.0, 0.5, 30) == 0.25
    assert backoff_delay(0, 0.999999, 0.5, 30) == pytest.approx(0.5)
    assert backoff_delay(3, 0.0, 0.5, 30) == 2.0
    assert backoff_delay(50, 0.999999, 0.5, 30) == pytest.approx(30)
    assert backoff_delay(10**9, 0.5, 0.5, 30) <= 30


def test_gossip_host_rewrites_loopback_to_the_gossiper():
    assert gossip_host("127.0.0.1", "192.168.1.5") == "192.168.1.5"
    assert gossip_host("0.0.0.0", "192.168.1.5") == "192.168.1.5"
    assert gossip_host("::1", "10.0.0.2") == "10.0.0.2"
    assert gossip_host("192.168.1.9", "192.168.1.5") == "192.168.1.9"
    assert gossip_host("127.0.0.1", "127.0.0.1") == "127.0.0.1"


def test_presence_and_refused_frames_round_trip_and_are_bounded():
    import json

    from fletchat.protocol import (
        PresenceEntry,
        PresenceFrame,
        RefusedFrame,
        decode_frame,
        encode_frame,
        encode_refused,
    )

    people = (PresenceEntry("Ada", "browser", 1795578257.5),)
    assert decode_frame(encode_frame(PresenceFrame(people))) == PresenceFrame(people)
    refused = (("b38a", "quota: too many"),)
    assert decode_frame(encode_frame(RefusedFrame(refused))) == RefusedFrame(refused)
    v = PEER_PROTOCOL_VERSION
    too_many = {"v": v, "type": "presence",
                "people": [{"name": f"P{i}", "device": "browser", "since": 1.0} for i in range(65)]}
    with pytest.raises(ProtocolError, match="more than 64"):
        decode_frame(json.dumps(too_many))
    odd_device = {"v": v, "type": "presence",
                  "people": [{"name": "Ada", "device": "toaster", "since": 1.0}]}
    with pytest.raises(ProtocolError, match="presence.device"):
        decode_frame(json.dumps(odd_device))
    long_reason = {"v": v, "type": "refused", "refused": [{"id": "a", "reason": "x" * 101}]}
    with pytest.raises(ProtocolError, match="longer than 100"):
        decode_frame(json.dumps(long_reason))
    # What we send is always within those bounds: reasons clipped, 256 refusals a frame.
    frames = encode_refused([(f"id{i}", "y" * 500) for i in range(300)])
    decoded = [decode_frame(f) for f in frames]
    assert [len(f.refusals) for f in decoded] == [256, 44]
    assert all(len(r) <= 100 for f in decoded for _, r in f.refusals)


def test_a_static_web_client_user_is_said_as_a_browser_on_the_wire():
    """A host's roster says ``browser-static`` for a person on its static web client; peers only
    know the device kinds of the spec and close a connection on anything else, so a host with
    such a user online dropped every peer (found by bench figure 14). Said as ``browser``."""
    from fletchat.protocol import PresenceEntry, PresenceFrame, encode_presence
    from fletchat.relay_protocol import RELAY_DEVICE

    frame = decode_frame(encode_presence([PresenceEntry("Ada", RELAY_DEVICE, 1795578257.5),
                                          PresenceEntry("Bob", "web-host", 1795578257.5)]))
    assert frame == PresenceFrame((PresenceEntry("Ada", "browser", 1795578257.5),
                                   PresenceEntry("Bob", "web-host", 1795578257.5)))


# ---- nesting depth (the bracket count skips string contents, escaped quotes included) ----


def _sync_with(extra: str) -> str:
    frame = json.loads(encode_sync([MSG])[0])
    return json.dumps(frame)[:-1] + f', "x": {extra}}}'


@pytest.mark.parametrize("depth", [15, 16])
def test_frames_nested_up_to_the_limit_are_read(depth):
    # The frame object itself is one level: ``depth`` more lists put it at the limit or under.
    text = _sync_with("[" * (depth - 1) + "]" * (depth - 1))
    assert isinstance(decode_frame(text), SyncFrame)


def test_frames_nested_past_the_limit_are_refused():
    rejects(_sync_with("[" * 17 + "]" * 17), "nests deeper")


@pytest.mark.parametrize("s", ['"[[[[[[[[[[[[[[[[[[[[[["', r'"\"[[[[[[[[[[[[[[[[[[[[\\"',
                               r'"\\\\\"{{{{{{{{{{{{{{{{{{{{{\"\\"'])
def test_brackets_inside_strings_do_not_count_as_nesting(s):
    text = _sync_with(f'[{s}, ' + "[" * 10 + "]" * 10 + "]")
    assert isinstance(decode_frame(text), SyncFrame)
    rejects(_sync_with(f'[{s}, ' + "[" * 17 + "]" * 17 + "]"), "nests deeper")


def _depth(value: object) -> int:
    """Levels of arrays and objects (the reference for ``_deeper_than``)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_the_depth_check_reads_the_nesting_of_the_parsed_frame(value):
    from fletchat.protocol import _deeper_than

    frame = {"v": 2, "x": value}
    depth = _depth(frame)
    for limit in range(1, 18):
        assert _deeper_than(frame, limit) is (depth > limit)


def _old_b64_check(value: object, size: int) -> bool:
    """The decoding check ``_is_b64`` replaced: decode, then encode again and compare."""
    import base64
    import binascii

    if not isinstance(value, str) or len(value) != 4 * -(-size // 3) or not value.isascii():
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == size and base64.b64encode(raw).decode("ascii") == value


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([32, 64]), st.binary(min_size=30, max_size=66),
       st.integers(min_value=0, max_value=200), st.characters(codec="utf-8"))
def test_the_base64_spelling_check_accepts_exactly_the_canonical_encodings(size, data, at, ch):
    import base64

    from fletchat.protocol import _is_b64

    text = base64.b64encode(data).decode("ascii")
    variants = [text, text.rstrip("="), text + "=", text[:at] + ch + text[at + 1:],
                text[:at] + ch + text[at:], text[:-3] + ch + text[-2:], text[:-4] + ch + text[-3:],
                text.replace("/", "_").replace("+", "-"), text[:-2] + "\n" + text[-1:]]
    for v in variants:
        assert _is_b64(v, size) is _old_b64_check(v, size), v
    assert _is_b64(base64.b64encode(data[:size].ljust(size, b"\0")).decode(), size)


@pytest.mark.parametrize("size", [32, 64])
def test_the_base64_spelling_check_wants_the_spare_bits_zero(size):
    import base64

    from fletchat.protocol import _is_b64

    text = base64.b64encode(bytes(range(size))).decode("ascii")
    last = len(text) - text.count("=") - 1  # the last data character
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    verdicts = {c: _is_b64(text[:last] + c + text[last + 1:], size) for c in alphabet}
    assert verdicts == {c: _old_b64_check(text[:last] + c + text[last + 1:], size)
                        for c in alphabet}
    assert sum(verdicts.values()) == (4 if size == 64 else 16)
