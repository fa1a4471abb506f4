"""The peer-to-peer wire format, sans-I/O.

Frames are JSON text objects ``{"v": PROTOCOL_VERSION, "type": ..., ...}``. Everything here is a pure
function or a small state object, so the rules (validation, limits, rate limiting, which of two
connections survives, reconnect delays) are tested without sockets, and ``mesh`` stays a thin asyncio
shell around them. ``docs/protocol.md`` describes the same format for people.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fletchat import __version__
from fletchat.events import Presence
from fletchat.model import (
    DEVICE_KINDS,
    MAX_FRAME_BYTES,
    MAX_PRESENCE_PER_PEER,
    FletChatError,
    Message,
    ValidationError,
    validate_channel,
    validate_id,
    validate_name,
)

PROTOCOL_VERSION = 1  # the relay protocol for static web clients (relay_protocol) still speaks 1
# The peer-to-peer mesh: 2 added ``presence``/``refused`` frames and signs ``ts`` as integer ms.
PEER_PROTOCOL_VERSION = 2

# ---- limits of the wire format (the message/name/frame limits live in ``model``) ----
MAX_SYNC_MESSAGES = 100  # recent messages a newcomer is sent after the handshake, in total
MAX_GOSSIP_PEERS = 64  # addresses in one ``peers`` frame
MAX_HAVE_ORIGINS = 1024  # origins in one ``have`` summary (installs that ever wrote here)
MAX_ACK_IDS = 256  # message ids in one ``ack`` frame
MAX_REASON_CHARS = 100  # ``bye`` / ``refused`` reasons; close reasons must fit 123 bytes
MAX_REFUSED_IDS = 256  # entries in one ``refused`` frame
MAX_APP_VERSION_CHARS = 32
MAX_HOST_CHARS = 64
MAX_JSON_DEPTH = 16  # deeper nesting is hostile: no frame needs more than 4 levels
MAX_DIAL = 2**53  # dial counters are JSON numbers: stay exact in every JSON implementation

# Flood protection: every frame costs one token; a connection may burst RATE_BURST frames, then
# RATE_FRAMES_PER_SECOND on average. People type far slower, but a newcomer relays what it learned
# from one peer's sync (up to MAX_SYNC_MESSAGES msg frames) to the others, so the burst is roomy.
RATE_FRAMES_PER_SECOND = 30.0
RATE_BURST = 3.0 * MAX_SYNC_MESSAGES
# Messages count on their own as well, also those inside ``sync`` frames (one frame can carry 100):
# a connection may hand over MESSAGE_BURST messages at once, then MESSAGES_PER_SECOND. Catch-up of
# a long history paces itself to stay under this (catchup.Pacer); quotas per origin are the hub's.
# The burst holds a catch-up of 10,000 (less catchup.LIVE_RESERVE): at 8000 a 10,000-message
# history waited 0.83 s for tokens however fast both peers were. What a flood costs is bounded
# by the rate; the burst is only how much may come at once (and TCP pushback bounds the memory).
MESSAGES_PER_SECOND = 4000.0
MESSAGE_BURST = 12000.0

# Reconnect backoff (seconds): doubles per failed attempt up to the cap, with jitter.
RECONNECT_MIN = 0.5
RECONNECT_MAX = 30.0
# Addresses learned from gossip (not from discovery or --peer) are given up after this many failures.
GOSSIP_MAX_FAILURES = 5

# ---- WebSocket close codes the mesh uses ----
CLOSE_NORMAL = 1000  # bye, "duplicate", "self"
CLOSE_GOING_AWAY = 1001  # this peer is shutting down
CLOSE_PROTOCOL_ERROR = 1002  # a frame broke the format (JSON, types, version, order)
CLOSE_UNSUPPORTED_DATA = 1003  # binary frame
CLOSE_POLICY = 1008  # flood (rate limit)
CLOSE_TOO_BIG = 1009  # frame over MAX_FRAME_BYTES
CLOSE_TIMEOUT = 1011  # no hello / no heartbeat in time (same code websockets uses for keepalive)

REASON_DUPLICATE = "duplicate"
REASON_SELF = "self"

_APP_VERSION_RE = re.compile(r"^[A-Za-z0-9.+_-]{1,32}$")
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
KEY_BYTES = 32  # a raw Ed25519 public key: 44 base64 characters
SIG_BYTES = 64  # an Ed25519 signature: 88 base64 characters
NONCE_BYTES = 16


class ProtocolError(FletChatError, ValueError):
    """A frame that breaks the wire format. ``reason`` is fit for a close frame and a log line."""

    def __init__(self, reason: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# ---- frames ----


@dataclass(frozen=True)
class Hello:
    """The handshake: the first frame each side sends.

    ``session`` is a random id per process start, so a restarted peer (same id, new session) is told
    apart from a second connection of the same running peer. ``dial`` is the dialing side's counter
    of connections it opened (acceptors send 0); with it both ends agree which of two connections
    that one peer opened is the newer one.
    """

    peer_id: str
    name: str
    device: str
    port: int  # where this peer accepts connections; 0 = it does not
    app: str = __version__
    session: str = "0"
    dial: int = 0
    key: str = ""  # base64 Ed25519 public key ("" = an unauthenticated peer, refused over TLS)
    nonce: str = ""  # 32 hex digits, fresh per connection: the challenge the other side signs


@dataclass(frozen=True)
class Auth:
    """Proof of the key in ``hello``: an Ed25519 signature over ``auth_transcript`` (both
    nonces, both ids and the TLS server certificate), sent right after each side has the other's
    ``hello``."""

    sig: str


@dataclass(frozen=True)
class MsgFrame:
    """One chat event, with its origin's signature (base64; "" = unsigned)."""

    message: Message
    sig: str = ""


@dataclass(frozen=True)
class Ping:
    """Heartbeat; the other side answers with ``Pong``."""


@dataclass(frozen=True)
class Pong:
    """Heartbeat answer."""


@dataclass(frozen=True)
class PeerAddress:
    """Where a peer accepts connections, as seen by the peer that gossips it."""

    peer_id: str
    host: str
    port: int


@dataclass(frozen=True)
class PeersFrame:
    """Gossip: peers the sender is connected to, so manually added peers spread through the mesh."""

    peers: tuple[PeerAddress, ...]


@dataclass(frozen=True)
class SyncFrame:
    """A batch of recent messages, sent right after the handshake so a newcomer sees the talk."""

    messages: tuple[Message, ...]
    sigs: tuple[str, ...] = ()  # parallel to messages ("" = unsigned); () = none at all


@dataclass(frozen=True)
class HaveFrame:
    """Catch-up: "of each origin, I hold every message up to this seq". The other side answers
    with what is missing, in ``sync`` batches (see docs/protocol.md)."""

    summary: dict[str, int]


@dataclass(frozen=True)
class AckFrame:
    """Delivery receipts: sent to a message's origin for messages it wrote (live or caught up)."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Bye:
    """A clean leave; the sender closes the connection next."""

    reason: str = ""


@dataclass(frozen=True)
class RefusedFrame:
    """The receiver did not store these messages (``(id, reason)`` pairs): the writer is told."""

    refusals: tuple[tuple[str, str], ...]


# One person on the sending peer right now: the hub's own ``Presence`` value, not a parallel type.
PresenceEntry = Presence


@dataclass(frozen=True)
class PresenceFrame:
    """Who is on the sending peer now (replaces what it said before; at most
    ``MAX_PRESENCE_PER_PEER``)."""

    people: tuple[PresenceEntry, ...]


@dataclass(frozen=True)
class TypingFrame:
    """``name`` on the sending peer is typing in ``channel`` (live only: never stored or relayed;
    the person is (connection's peer id, name))."""

    name: str
    channel: str


@dataclass(frozen=True)
class ReadFrame:
    """``name`` on the sending peer has seen ``channel`` up to the message stamped ``upto``."""

    name: str
    channel: str
    upto: str


Frame = (
    Hello | Auth | MsgFrame | Ping | Pong | PeersFrame | SyncFrame | HaveFrame | AckFrame | Bye
    | RefusedFrame | PresenceFrame | TypingFrame | ReadFrame
)

_TYPE_NAMES: dict[type, str] = {
    Hello: "hello",
    Auth: "auth",
    MsgFrame: "msg",
    Ping: "ping",
    Pong: "pong",
    PeersFrame: "peers",
    SyncFrame: "sync",
    HaveFrame: "have",
    AckFrame: "ack",
    Bye: "bye",
    RefusedFrame: "refused",
    PresenceFrame: "presence",
    TypingFrame: "typing",
    ReadFrame: "read",
}


# ---- encoding ----


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _frame_dict(frame: Frame) -> dict[str, Any]:
    head: dict[str, Any] = {"v": PEER_PROTOCOL_VERSION, "type": _TYPE_NAMES[type(frame)]}
    match frame:
        case Hello():
            head.update(
                id=frame.peer_id,
                name=frame.name,
                device=frame.device,
                port=frame.port,
                app=frame.app,
                session=frame.session,
                dial=frame.dial,
            )
            if frame.key:
                head.update(key=frame.key, nonce=frame.nonce)
        case Auth():
            head["sig"] = frame.sig
        case MsgFrame():
            head["msg"] = _msg_dict(frame.message, frame.sig)
        case PeersFrame():
            head["peers"] = [{"id": p.peer_id, "host": p.host, "port": p.port} for p in frame.peers]
        case SyncFrame():
            sigs = frame.sigs or ("",) * len(frame.messages)
            head["msgs"] = [_msg_dict(m, sig) for m, sig in zip(frame.messages, sigs, strict=True)]
        case HaveFrame():
            head["have"] = dict(frame.summary)
        case AckFrame():
            head["ids"] = list(frame.ids)
        case Bye():
            head["reason"] = frame.reason
        case RefusedFrame():
            head["refused"] = [{"id": i, "reason": r} for i, r in frame.refusals]
        case PresenceFrame():
            head["people"] = [
                {"name": p.name, "device": p.device, "since": p.since} for p in frame.people
            ]
    return head


def _live_dict(frame: TypingFrame | ReadFrame) -> dict[str, Any]:
    return {"v": PEER_PROTOCOL_VERSION, "type": _TYPE_NAMES[type(frame)], **asdict(frame)}


def _msg_dict(msg: Message, sig: str) -> dict[str, Any]:
    """A message on the wire: its fields plus, when signed, ``sig`` (ignored by older readers)."""
    out = msg.to_dict()
    if sig and (msg.conv is None or msg.conv.redacted is None):  # a stub is vouched, not signed
        out["sig"] = sig
    return out


def encode_frame(frame: Frame) -> str:
    """Serialize one frame. Raises ``ValueError`` if it would exceed ``MAX_FRAME_BYTES`` (a bug)."""
    text = _dumps(_live_dict(frame) if isinstance(frame, (TypingFrame, ReadFrame))
                  else _frame_dict(frame))
    if len(text.encode("utf-8")) > MAX_FRAME_BYTES:
        raise ValueError(f"{_TYPE_NAMES[type(frame)]} frame exceeds {MAX_FRAME_BYTES} bytes")
    return text


def encode_hello(hello: Hello) -> str:
    return encode_frame(hello)


def encode_msg(message: Message, sig: str = "") -> str:
    return encode_frame(MsgFrame(message, sig))


def encode_auth(sig: bytes) -> str:
    return encode_frame(Auth(base64.b64encode(sig).decode("ascii")))


def encode_ping() -> str:
    return encode_frame(Ping())


def encode_pong() -> str:
    return encode_frame(Pong())


def encode_bye(reason: str = "") -> str:
    return encode_frame(Bye(_clip(reason, MAX_REASON_CHARS)))


def encode_peers(peers: Iterable[PeerAddress]) -> str:
    """A gossip frame with at most ``MAX_GOSSIP_PEERS`` addresses (extra ones are left out)."""
    chosen = []
    for p in peers:
        if len(chosen) == MAX_GOSSIP_PEERS:
            break
        chosen.append(p)
    return encode_frame(PeersFrame(tuple(chosen)))


def encode_sync(
    messages: Sequence[Message],
    limit: int = MAX_SYNC_MESSAGES,
    sig_for: Callable[[Message], str] | None = None,
) -> list[str]:
    """The newest ``limit`` messages, oldest first, split into frames that each fit the size limit.

    ``sig_for`` gives each message's signature (base64, "" for none)."""
    recent = list(messages)[-limit:] if limit > 0 else []
    return [frame for frame, _ in sync_frames(recent, sig_for)]


def sync_frames(
    messages: Sequence[Message], sig_for: Callable[[Message], str] | None = None
) -> list[tuple[str, int]]:
    """``messages`` as ``sync`` frames that each fit the size limit: (frame, message count).

    Each message is JSON-encoded once and the frame is joined from those texts (the same JSON
    ``encode_frame`` gives): encoding every message twice, to size it and then in its frame, was
    most of what a catch-up cost its sender."""
    prefix, suffix = _SYNC_HEAD
    overhead = len(prefix) + len(suffix) + 8
    frames: list[tuple[str, int]] = []
    parts: list[str] = []
    size = overhead
    for m in messages:
        part = _dumps(_msg_dict(m, sig_for(m) if sig_for is not None else ""))
        m_size = len(part.encode("utf-8")) + 1
        if parts and (size + m_size > MAX_FRAME_BYTES or len(parts) >= MAX_SYNC_MESSAGES):
            frames.append((_sync_frame(parts), len(parts)))
            parts, size = [], overhead
        parts.append(part)
        size += m_size
    if parts:
        frames.append((_sync_frame(parts), len(parts)))
    return frames


def _sync_head() -> tuple[str, str]:
    empty = _dumps(_frame_dict(SyncFrame(())))
    at = empty.index("[]")
    return empty[: at + 1], empty[at + 1 :]


_SYNC_HEAD = _sync_head()


def _sync_frame(parts: list[str]) -> str:
    text = _SYNC_HEAD[0] + ",".join(parts) + _SYNC_HEAD[1]
    if len(text.encode("utf-8")) > MAX_FRAME_BYTES:
        raise ValueError(f"sync frame exceeds {MAX_FRAME_BYTES} bytes")
    return text


def encode_have(summary: dict[str, int]) -> str:
    """Our catch-up summary; the largest ``MAX_HAVE_ORIGINS`` origins by seq if there are more."""
    items = sorted(summary.items(), key=lambda kv: -kv[1])[:MAX_HAVE_ORIGINS]
    return encode_frame(HaveFrame(dict(items)))


def encode_acks(ids: Sequence[str]) -> list[str]:
    """Receipts for ``ids``, split into frames of at most ``MAX_ACK_IDS``."""
    return [
        encode_frame(AckFrame(tuple(ids[i : i + MAX_ACK_IDS])))
        for i in range(0, len(ids), MAX_ACK_IDS)
    ]


def encode_refused(refusals: Sequence[tuple[str, str]]) -> list[str]:
    """``refused`` frames for ``(id, reason)`` pairs: reasons clipped, ``MAX_REFUSED_IDS`` a frame."""
    pairs = [(i, _clip(r, MAX_REASON_CHARS)) for i, r in refusals]
    return [
        encode_frame(RefusedFrame(tuple(pairs[i : i + MAX_REFUSED_IDS])))
        for i in range(0, len(pairs), MAX_REFUSED_IDS)
    ]


def wire_device(device: str) -> str:
    """A device kind as the wire knows it: local-only kinds (a host's static web client,
    ``browser-static``) are said as ``browser``, which every peer accepts."""
    return device if device in DEVICE_KINDS else "browser"


def encode_presence(people: Iterable[PresenceEntry]) -> str:
    """Who is here now; the first ``MAX_PRESENCE_PER_PEER`` people (extra ones are left out)."""
    said = (replace(p, device=wire_device(p.device)) for p in people)
    return encode_frame(PresenceFrame(tuple(said)[:MAX_PRESENCE_PER_PEER]))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- decoding ----


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _check_tree(obj: object, depth: int = 0) -> None:
    """Reject nesting deeper than MAX_JSON_DEPTH and strings that are not valid Unicode."""
    if depth > MAX_JSON_DEPTH:
        raise ProtocolError(f"frame nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("frame contains an unpaired surrogate (invalid Unicode)") from None
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_tree(key, depth + 1)
            _check_tree(value, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            _check_tree(value, depth + 1)


_CONTAINERS = (dict, list)


def _deeper_than(obj: object, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels deep in a parsed frame (the
    frame object itself is one level). Read from the parsed tree, level by level, visiting only
    containers: strings cannot count, and a catch-up page (100 flat objects in a list) is about
    1,200 type checks instead of a regular-expression pass over its text (5x slower)."""
    level = [obj]
    for _ in range(limit):
        level = [v for c in level for v in (c.values() if type(c) is dict else c)
                 if type(v) in _CONTAINERS]
        if not level:
            return False
    return True


def _check_parsed(text: str, obj: object) -> None:
    """``_check_tree`` only where it can find something: a lone surrogate can only come from a
    ``\\u`` escape (the text itself is valid UTF-8), and depth only matters past
    ``MAX_JSON_DEPTH`` brackets. Walking every node of every frame was a large part of decoding."""
    if "\\u" in text or (
        text.count("{") + text.count("[") > MAX_JSON_DEPTH and _deeper_than(obj, MAX_JSON_DEPTH)
    ):
        _check_tree(obj)


def _parse(data: str | bytes) -> dict[str, Any]:
    if isinstance(data, str):
        # A str of n characters is at least n UTF-8 bytes: refuse long ones before encoding them.
        if len(data) > MAX_FRAME_BYTES:
            raise ProtocolError(f"frame is over {MAX_FRAME_BYTES} bytes", CLOSE_TOO_BIG)
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise ProtocolError("frame is not valid Unicode") from None
        text = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
        if size > MAX_FRAME_BYTES:
            raise ProtocolError(f"frame is {size} bytes (limit {MAX_FRAME_BYTES})", CLOSE_TOO_BIG)
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("frame is not valid UTF-8") from None
    else:
        raise ProtocolError("frame must be text")
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame is {size} bytes (limit {MAX_FRAME_BYTES})", CLOSE_TOO_BIG)
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ProtocolError(f"frame nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as err:  # JSONDecodeError, huge integers, NaN/Infinity
        raise ProtocolError(f"invalid JSON: {_clip(str(err), 60)}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame must be a JSON object")
    _check_parsed(text, obj)
    return obj


def _int_field(obj: dict[str, Any], key: str, ftype: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProtocolError(f"{ftype}.{key} must be an integer {lo}-{hi}")
    return value


def _str_field(
    obj: dict[str, Any], key: str, ftype: str, limit: int, default: str | None = None
) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise ProtocolError(f"{ftype}.{key} must be a string")
    if len(value) > limit:
        raise ProtocolError(f"{ftype}.{key} is longer than {limit} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise ProtocolError(f"{ftype}.{key} contains control characters")
    return value


def _validated(ftype: str, key: str, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except ValidationError as err:
        raise ProtocolError(f"{ftype}.{key}: {err}") from None


def _host(value: object, ftype: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_HOST_CHARS:
        raise ProtocolError(f"{ftype}.host must be an IP address")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ProtocolError(f"{ftype}.host must be an IP address") from None
    return value


def _list_field(obj: dict[str, Any], key: str, ftype: str, limit: int) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise ProtocolError(f"{ftype}.{key} must be a list")
    if len(value) > limit:
        raise ProtocolError(f"{ftype}.{key} has more than {limit} entries")
    return value


def _decode_hello(obj: dict[str, Any]) -> Hello:
    # Checked in wire order, so the reason names the first bad field.
    peer_id = _validated("hello", "id", lambda: validate_id(obj.get("id"), "peer id"))
    name = _validated("hello", "name", lambda: validate_name(obj.get("name")))
    device = obj.get("device")
    if device not in DEVICE_KINDS:
        raise ProtocolError(f"hello.device must be one of {', '.join(DEVICE_KINDS)}")
    port = _int_field(obj, "port", "hello", 0, 65535)
    app = obj.get("app")
    if not isinstance(app, str) or not _APP_VERSION_RE.match(app):
        raise ProtocolError("hello.app must be a short version string")
    session = _validated("hello", "session", lambda: validate_id(obj.get("session"), "session"))
    dial = _int_field(obj, "dial", "hello", 0, MAX_DIAL)
    key = ""
    nonce = ""
    if "key" in obj:
        key = obj["key"]
        if not _is_b64(key, KEY_BYTES):
            raise ProtocolError("hello.key must be a base64 Ed25519 public key")
        nonce = obj.get("nonce")
        if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
            raise ProtocolError("hello.nonce must be 32 hex digits")
    return Hello(peer_id, name, device, port, app, session, dial, key, nonce)


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_pattern(size: int) -> re.Pattern[str]:
    """The one canonical spelling of ``size`` bytes in standard base64: padded, and the last
    data character's spare bits zero (4 of them after one leftover byte, 2 after two)."""
    full, rest = divmod(size, 3)
    if not rest:
        return re.compile(f"[A-Za-z0-9+/]{{{4 * full}}}")
    step = 16 if rest == 1 else 4  # the last character's value is a multiple of this
    last = re.escape(_B64[::step])
    return re.compile(f"[A-Za-z0-9+/]{{{4 * full + rest}}}[{last}]{'=' * (2 - rest + 1)}")


_B64_SPELLINGS = {n: _b64_pattern(n) for n in (KEY_BYTES, SIG_BYTES)}


def _is_b64(value: object, size: int) -> bool:
    """Whether ``value`` is the standard base64 of exactly ``size`` bytes, in the one canonical
    spelling (padded, zero spare bits): 88 unpadded characters are 66 bytes, not a signature,
    and another peer must be able to compare keys as strings. One match, no decoding (every
    message of a catch-up page has a signature)."""
    return isinstance(value, str) and _B64_SPELLINGS[size].fullmatch(value) is not None


def _sig_field(value: object, ftype: str) -> str:
    if value is None or value == "":
        return ""
    if not _is_b64(value, SIG_BYTES):
        raise ProtocolError(f"{ftype}.sig must be a base64 Ed25519 signature")
    return value  # type: ignore[return-value]


def _decode_message(obj: object, ftype: str, key: str = "msg") -> tuple[Message, str]:
    msg = _validated(ftype, key, lambda: Message.from_dict(obj))
    sig = _sig_field(obj.get("sig") if isinstance(obj, dict) else None, ftype)
    return msg, sig


def _decode_peers(obj: dict[str, Any]) -> PeersFrame:
    out = []
    for entry in _list_field(obj, "peers", "peers", MAX_GOSSIP_PEERS):
        if not isinstance(entry, dict):
            raise ProtocolError("peers entries must be objects")
        out.append(
            PeerAddress(
                peer_id=_validated(
                    "peers", "id", lambda e=entry: validate_id(e.get("id"), "peer id")
                ),
                host=_host(entry.get("host"), "peers"),
                port=_int_field(entry, "port", "peers", 1, 65535),
            )
        )
    return PeersFrame(tuple(out))


def _decode_sync(obj: dict[str, Any]) -> SyncFrame:
    msgs = _list_field(obj, "msgs", "sync", MAX_SYNC_MESSAGES)
    decoded = [_decode_message(m, "sync", "msgs") for m in msgs]
    sigs = tuple(sig for _, sig in decoded)
    return SyncFrame(tuple(m for m, _ in decoded), sigs if any(sigs) else ())


def _decode_have(obj: dict[str, Any]) -> HaveFrame:
    have = obj.get("have")
    if not isinstance(have, dict):
        raise ProtocolError("have.have must be an object")
    if len(have) > MAX_HAVE_ORIGINS:
        raise ProtocolError(f"have.have has more than {MAX_HAVE_ORIGINS} origins")
    summary: dict[str, int] = {}
    for origin, seq in have.items():
        _validated("have", "origin", lambda o=origin: validate_id(o, "origin"))
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_DIAL:
            raise ProtocolError("have values must be sequence numbers")
        summary[origin] = seq
    return HaveFrame(summary)


def _decode_ack(obj: dict[str, Any]) -> AckFrame:
    ids = _list_field(obj, "ids", "ack", MAX_ACK_IDS)
    return AckFrame(
        tuple(_validated("ack", "ids", lambda i=i: validate_id(i, "message id")) for i in ids)
    )


def _decode_refused(obj: dict[str, Any]) -> RefusedFrame:
    out = []
    for entry in _list_field(obj, "refused", "refused", MAX_REFUSED_IDS):
        if not isinstance(entry, dict):
            raise ProtocolError("refused entries must be objects")
        msg_id = _validated("refused", "id", lambda e=entry: validate_id(e.get("id"), "message id"))
        out.append((msg_id, _str_field(entry, "reason", "refused", MAX_REASON_CHARS, default="")))
    return RefusedFrame(tuple(out))


def _decode_presence(obj: dict[str, Any]) -> PresenceFrame:
    out = []
    for entry in _list_field(obj, "people", "presence", MAX_PRESENCE_PER_PEER):
        if not isinstance(entry, dict):
            raise ProtocolError("presence entries must be objects")
        name = _validated("presence", "name", lambda e=entry: validate_name(e.get("name")))
        device = entry.get("device")
        if device not in DEVICE_KINDS:
            raise ProtocolError(f"presence.device must be one of {', '.join(DEVICE_KINDS)}")
        since = entry.get("since")
        if isinstance(since, bool) or not isinstance(since, (int, float)) or not 0 <= since < 1e11:
            raise ProtocolError("presence.since must be unix seconds")
        out.append(PresenceEntry(name, device, float(since)))
    return PresenceFrame(tuple(out))


def parse_head(
    data: str | bytes, speaker: str = "this peer", version: int = PROTOCOL_VERSION
) -> tuple[dict[str, Any], str]:
    """The checks every frame gets first (size, JSON, depth, Unicode, version, type), shared by
    the peer protocol and the relay for static web clients."""
    obj = _parse(data)
    got = obj.get("v")
    if isinstance(got, bool) or not isinstance(got, int):
        raise ProtocolError("frame needs an integer protocol version 'v'")
    if got != version:
        shown = got if abs(got) < 10**6 else "?"
        raise ProtocolError(f"unsupported protocol version {shown} ({speaker} speaks {version})")
    ftype = obj.get("type")
    if not isinstance(ftype, str):
        raise ProtocolError("frame needs a string 'type'")
    return obj, ftype


def frame_type(data: str | bytes) -> str:
    """The ``type`` of a frame, checking only that it is a JSON object ("" when it has none):
    how the relay's client tells peer-protocol frames from relay frames in one stream."""
    ftype = _parse(data).get("type")
    return ftype if isinstance(ftype, str) else ""


def decode_frame(data: str | bytes) -> Frame:
    """Parse and validate one frame from a peer; raise ``ProtocolError`` saying what is wrong.

    The size limit is checked before any parsing. Unknown extra fields are ignored (so a later
    minor addition does not need a version bump); unknown types and versions are refused.
    """
    obj, ftype = parse_head(data, version=PEER_PROTOCOL_VERSION)
    decoder = _DECODERS.get(ftype)
    if decoder is None:
        raise ProtocolError(f"unknown frame type {_clip(ftype, 20)!r}")
    return decoder(obj)


def _decode_auth(obj: dict[str, Any]) -> Auth:
    sig = obj.get("sig")
    if not _is_b64(sig, SIG_BYTES):
        raise ProtocolError("auth.sig must be a base64 Ed25519 signature")
    return Auth(sig)  # type: ignore[arg-type]


_DECODERS: dict[str, Callable[[dict[str, Any]], Frame]] = {
    "hello": _decode_hello,
    "auth": _decode_auth,
    "msg": lambda obj: MsgFrame(*_decode_message(obj.get("msg"), "msg")),
    "ping": lambda obj: Ping(),
    "pong": lambda obj: Pong(),
    "peers": _decode_peers,
    "sync": _decode_sync,
    "have": _decode_have,
    "ack": _decode_ack,
    "bye": lambda obj: Bye(_str_field(obj, "reason", "bye", MAX_REASON_CHARS, default="")),
    "refused": _decode_refused,
    "presence": _decode_presence,
    "typing": lambda obj: TypingFrame(*_live_fields(obj, "typing")),
    "read": lambda obj: ReadFrame(*_live_fields(obj, "read"), _validated(
        "read", "upto", lambda: _stamp(obj.get("upto")))),
}


def _live_fields(obj: dict[str, Any], ftype: str) -> tuple[str, str]:
    return (_validated(ftype, "name", lambda: validate_name(obj.get("name"))),
            _validated(ftype, "channel", lambda: validate_channel(obj.get("channel"))))


def _stamp(raw: object) -> str:
    from fletchat.conversation.kinds import validate_hlc

    return validate_hlc(raw)



# ---- what gets signed (pure bytes; the crypto is in ``identity``/``trust``) ----

AUTH_CONTEXT = "fletchat-auth-v1"
MESSAGE_CONTEXT = "fletchat-msg-v2"
MESSAGE_CONTEXT_V1 = "fletchat-msg-v1"


def ts_millis(ts: float) -> int:
    """``ts`` (unix seconds) as the integer milliseconds that are signed: ``ts × 1000`` rounded
    half away from zero. Writers send ``ts`` with at most 3 decimals, so every language agrees."""
    return math.floor(ts * 1000 + 0.5)


def message_signing_bytes(msg: Message) -> bytes:
    """The canonical encoding of a message that its origin signs (protocol 2): a JSON array of
    the context label and every field that means something, in a fixed order, ``ts`` as integer
    milliseconds (``ts_millis``), strings as UTF-8 without escapes beyond JSON's required ones,
    no spaces. The label stops a signature from being replayed as anything else."""
    # The fixed elements are strings and integers: each joined as JSON writes it (the string
    # encoder ``json.dumps(..., ensure_ascii=False)`` uses, an ``int`` as its ``repr``): 2.0 µs
    # per message instead of 3.1 for a ``json.dumps`` call, the same bytes (test_signing_spec).
    e = _json_str
    try:
        head = (f'[{_CONTEXT_JSON},{e(msg.id)},{e(msg.kind)},{e(msg.author)},{e(msg.origin)},'
                f'{e(msg.text)},{ts_millis(msg.ts)},{e(msg.channel)},{e(msg.hlc)},'
                f'{_json_int(msg.seq)}')
    except TypeError:  # a field that is not text: as JSON writes it, whatever it is
        head = _CANONICAL.encode([
            MESSAGE_CONTEXT, msg.id, msg.kind, msg.author, msg.origin, msg.text,
            ts_millis(msg.ts), msg.channel, msg.hlc, msg.seq])[:-1]
    # Optional trailing elements, each present only when the message has it, so messages
    # without keep their signatures: the files (a JSON array), then the conversation fields (a
    # JSON object, keys sorted). An array and an object cannot be confused (docs/protocol.md).
    tail = []
    if msg.files:
        tail.append(_files_signing_element(msg))
    if msg.conv is not None and (ext := msg.conv.signed(msg.kind)):
        tail.append(ext)
    if tail:
        head += "," + _CANONICAL.encode(tail)[1:-1]
    return (head + "]").encode("utf-8")


_json_str = json.encoder.encode_basestring  # what json.dumps uses when ensure_ascii=False
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_CONTEXT_JSON = _json_str(MESSAGE_CONTEXT)


def _json_int(value: object) -> str:
    return repr(value) if type(value) is int else _CANONICAL.encode(value)


def _files_signing_element(msg: Message) -> list[dict[str, Any]]:
    from fletchat.files.manifest import signing_element  # pure, like this module

    return signing_element(msg.files)


def message_signing_bytes_v1(msg: Message) -> bytes:
    """What protocol 1 signed (Python's float repr of ``ts``): only to verify old history."""
    fields = [
        MESSAGE_CONTEXT_V1, msg.id, msg.kind, msg.author, msg.origin, msg.text,
        float(msg.ts), msg.channel, msg.hlc, msg.seq,
    ]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def auth_transcript(
    *,
    role: str,
    signer_id: str,
    signer_key: str,
    other_id: str,
    server_cert_sha256: str,
    client_nonce: str,
    server_nonce: str,
) -> bytes:
    """What each side signs to prove its key on one connection.

    ``role`` is "client" (dialed) or "server" (accepted); both nonces make it fresh; the other's
    id names the intended receiver; and the SHA-256 of the TLS certificate the *server* presented
    binds it to this TLS channel: a man in the middle terminates TLS with its own certificate, so a
    proof relayed through it names the wrong certificate and is refused.
    """
    fields = [
        AUTH_CONTEXT, role, signer_id, signer_key, other_id, server_cert_sha256,
        client_nonce, server_nonce,
    ]
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def decode_b64(value: str) -> bytes:
    """Bytes of a key or signature a decoder already checked (``Hello.key``, ``Auth.sig``...)."""
    return base64.b64decode(value)


def encode_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---- small pure rules the mesh applies ----


@dataclass
class TokenBucket:
    """Flood protection per connection: ``allow()`` spends a token; tokens refill at ``rate``/s.

    The clock is injected so tests can drive time.
    """

    rate: float = RATE_FRAMES_PER_SECOND
    burst: float = RATE_BURST
    clock: Callable[[], float] = field(default=lambda: 0.0)
    tokens: float = field(init=False)
    _last: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self._last = self.clock()

    def ready(self, cost: float = 1.0) -> bool:
        """Would ``allow(cost)`` pass now? Spends nothing."""
        elapsed = max(0.0, self.clock() - self._last)
        return min(self.burst, self.tokens + elapsed * self.rate) >= cost

    def allow(self, cost: float = 1.0) -> bool:
        now = self.clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass(frozen=True)
class ConnKey:
    """What both ends know about one connection, enough for them to agree which one to keep."""

    initiator: str  # peer id of the side that dialed
    session: str  # the remote peer's session (from its hello)
    dial: int  # the initiator's dial counter for this connection


def keep_new_connection(existing: ConnKey, new: ConnKey) -> bool:
    """One connection per pair of peers: should ``new`` replace ``existing`` (same remote peer)?

    - The remote peer restarted (other session): the new connection wins; the old one is stale.
    - Both peers dialed each other: keep the one dialed by the peer with the smaller id.
    - One peer dialed twice: keep its newer dial.
    Both ends apply the same rule to the same facts, so they close the same connection.
    """
    if new.session != existing.session:
        return True
    if new.initiator != existing.initiator:
        return new.initiator < existing.initiator
    return new.dial > existing.dial


def backoff_delay(
    attempt: int, rand: float, lo: float = RECONNECT_MIN, hi: float = RECONNECT_MAX
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): exponential, capped, with jitter.

    ``rand`` in [0, 1) (injected) spreads the delay over [50 %, 100 %] of the step, so peers that
    lost each other at the same moment do not all redial in lockstep.
    """
    step = min(hi, lo * 2 ** min(attempt, 32))
    return step * (0.5 + 0.5 * rand)


def gossip_host(advertised: str, via: str) -> str:
    """The address to dial for a gossiped peer.

    A loopback or unspecified address only means something on the gossiping peer's machine, so
    the peer is reached at the gossiper's own address (``via``) instead.
    """
    try:
        ip = ipaddress.ip_address(advertised)
        via_ip = ipaddress.ip_address(via)
    except ValueError:
        return advertised
    if (ip.is_loopback or ip.is_unspecified) and not via_ip.is_loopback:
        return via
    return advertised
