"""The relay's wire format, sans-I/O: what a static (Pyodide) client and host mode say on ``/relay``.

A static client cannot join the LAN itself (a browser has no UDP and no server socket), so host mode
relays for it: the client names itself once (``hello``), then sends text (``send``); the host turns
each into a ``Message`` authored by that name and posts it to its hub, and pushes every hub message
back. Frames are JSON objects ``{"v": 1, "type": ...}`` like the peer protocol's, checked by the same
parser (size, JSON, nesting, Unicode: ``protocol._parse``), and the server's ``msg``/``sync``/``pong``
frames *are* peer-protocol frames, so the client validates them with ``protocol.decode_frame``.

Both sides import this module: host mode (``fletchat.relay``) and the web client (``webclient/``),
which is why it imports nothing beyond ``model`` and ``protocol`` (no flet, no sockets).
``docs/protocol.md`` ("The relay for static web clients") describes it for people.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .events import Online
from .model import (
    DEFAULT_CHANNEL,
    MAX_FRAME_BYTES,
    MAX_NAME_CHARS,
    Message,
    ValidationError,
    validate_channel,
    validate_id,
    validate_name,
    validate_text,
)
from .owner import validate_owner_secret
from .protocol import (
    PROTOCOL_VERSION,
    MsgFrame,
    Pong,
    ProtocolError,
    SyncFrame,
    _decode_message,
    _msg_dict,
    _str_field,
    decode_frame,
    encode_sync,
    frame_type,
    parse_head,
)

RELAY_PATH = "/relay"
RELAY_DEVICE = "browser-static"  # what the roster shows for a person on a static client

# ---- limits of the relay (people type slowly; the peer protocol's burst is for relaying syncs) ----
RELAY_RATE_PER_SECOND = 5.0  # frames per second on average, per connection
RELAY_BURST = 20.0  # frames a connection may send at once before the rate applies
MAX_RELAY_CLIENTS = 256  # connections at once; more are refused with CLOSE_TRY_AGAIN ...
MAX_RELAY_CLIENTS_PER_ADDRESS = 16  # ... and from one client address
NAME_REFUSED = "hello.name: "  # a close reason's start: the name is taken; the rest says why
RELAY_QUEUE = 1000  # events waiting to be sent to one client; a client that falls further behind
#                     is disconnected (it reconnects and gets the recent history again) ...
RELAY_QUEUE_CHARS = 8_000_000  # ... as is one whose waiting frames pass this many characters (a
#                     client that never reads and asks for history pages held 1000 of them)
MAX_ONLINE_ENTRIES = 200  # people (and devices) listed in one ``online`` frame
RELAY_HISTORY = 100  # recent messages sent on connect (like a peer's sync)
RELAY_PAGE = 50  # messages in one answer to ``history``
RELAY_RESULTS = 50  # search results in one answer to ``search``
MAX_CHANNELS_LISTED = 500  # channels in one ``channels`` frame
MAX_QUERY_CHARS = 200  # a search query
MAX_SNIPPET_CHARS = 1000  # a search result's snippet
MAX_HLC_CHARS = 120  # a ``before`` clock stamp (``clock.Stamp.encode``)
MAX_REQ = 2**31 - 1  # request ids the client chooses, echoed in the answer
MAX_IDS = 256  # message ids in one ``delivered``, ``page.pending`` or ``problems.not_saved`` list
MAX_PROBLEMS = 4  # sentences in one ``problems`` frame (the host has two kinds: history, LAN)
MAX_PROBLEM_CHARS = 1000  # one such sentence

CLOSE_TRY_AGAIN = 1013  # too many relay clients, or the client fell behind
REASON_BYTES = 123  # a WebSocket close reason fits 123 UTF-8 bytes


# ---- frames the client sends ----


@dataclass(frozen=True)
class RelayHello:
    """Join the chat under ``name`` (validated with ``model.validate_name``); ``owner``: the
    browser's owner secret (``owner.validate_owner_secret``; "" when left out: the connection's
    messages are then its own alone), so only this browser edits or deletes what it wrote."""

    name: str
    owner: str = ""


@dataclass(frozen=True)
class RelaySend:
    """Post ``text`` (validated with ``model.validate_text``; ``None`` = whitespace only) to
    ``channel`` (``model.validate_channel``; #general when left out)."""

    text: str | None
    channel: str = DEFAULT_CHANNEL
    sealed: bool = False  # the client holds this channel as a private room: refused unless sealed


@dataclass(frozen=True)
class RelayPing:
    """Are you there? The host answers with a peer-protocol ``pong``."""


@dataclass(frozen=True)
class RelayHistory:
    """A page of ``channel`` before the clock stamp ``before`` ("" = the newest); answered by a
    ``page`` frame with the same ``req``."""

    req: int
    channel: str
    before: str = ""


@dataclass(frozen=True)
class RelaySearch:
    """Messages matching ``query`` (in channels this client may see); answered by ``found``."""

    req: int
    query: str


@dataclass(frozen=True)
class RelayCreateChannel:
    """Create ``#name`` (the host checks the name with ``hub.channel_name``)."""

    name: str


ClientFrame = (
    RelayHello | RelaySend | RelayPing | RelayHistory | RelaySearch | RelayCreateChannel
)


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_client_hello(name: str, owner: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "hello", "name": name,
                   **({"owner": owner} if owner else {})})


def encode_client_send(text: str, channel: str = DEFAULT_CHANNEL, sealed: bool = False) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "send", "text": text, "channel": channel,
                   **sealed_field(sealed)})


def sealed_field(sealed: bool) -> dict[str, bool]:
    """``{"sealed": true}`` for what must be sealed in a private room (left out otherwise)."""
    return {"sealed": True} if sealed else {}


def decode_sealed(obj: dict[str, Any], ftype: str) -> bool:
    value = obj.get("sealed", False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{ftype}.sealed must be true or false")
    return value


def encode_client_history(req: int, channel: str, before: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "history", "req": req, "channel": channel,
                   "before": before})


def encode_client_search(req: int, query: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "search", "req": req, "query": query})


def encode_client_channel(name: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "channel", "name": name})


def encode_client_ping() -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "ping"})


def _head(data: str | bytes) -> tuple[dict[str, Any], str]:
    return parse_head(data, speaker="relay")


def _req(obj: dict[str, Any], ftype: str) -> int:
    value = obj.get("req")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REQ:
        raise ProtocolError(f"{ftype}.req must be an integer 0-{MAX_REQ}")
    return value


def _channel(obj: dict[str, Any], ftype: str) -> str:
    try:
        return validate_channel(obj.get("channel", DEFAULT_CHANNEL))
    except ValidationError as err:
        raise ProtocolError(f"{ftype}.channel: {err}") from None


def _ids(obj: dict[str, Any], key: str, ftype: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise ProtocolError(f"{ftype}.{key} must be a list of at most {MAX_IDS} ids")
    try:
        return tuple(validate_id(i, "message id") for i in value)
    except ValidationError as err:
        raise ProtocolError(f"{ftype}.{key}: {err}") from None


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Parse and validate one frame from a static client; ``ProtocolError`` says what is wrong."""
    obj, ftype = _head(data)
    if ftype == "hello":
        try:
            name = validate_name(obj.get("name"))
        except ValidationError as err:
            raise ProtocolError(f"hello.name: {err}") from None
        try:
            return RelayHello(name, validate_owner_secret(obj["owner"]) if "owner" in obj else "")
        except ValidationError as err:
            raise ProtocolError(f"hello.owner: {err}") from None
    if ftype == "send":
        try:
            text = validate_text(obj.get("text"))
        except ValidationError as err:
            raise ProtocolError(f"send.text: {err}") from None
        return RelaySend(text, _channel(obj, "send"), decode_sealed(obj, "send"))
    if ftype == "ping":
        return RelayPing()
    if ftype == "history":
        before = _str_field(obj, "before", "history", MAX_HLC_CHARS, default="")
        return RelayHistory(_req(obj, "history"), _channel(obj, "history"), before)
    if ftype == "search":
        query = _str_field(obj, "query", "search", MAX_QUERY_CHARS).strip()
        if not query:
            raise ProtocolError("search.query must not be blank")
        return RelaySearch(_req(obj, "search"), query)
    if ftype == "channel":
        name = _str_field(obj, "name", "channel", MAX_NAME_CHARS + 1)
        return RelayCreateChannel(name)
    decoder = _part_decoder(ftype)
    if decoder is None:
        raise ProtocolError(f"unknown relay frame type {clip_reason(ftype, 20)!r}")
    return decoder(obj)


def _part_decoder(ftype: str) -> Callable[[dict[str, Any]], Any] | None:
    """The decoder of a frame that belongs to a part with its own frames module (imported when
    such a frame first comes: the conversation, files, private rooms), or None."""
    if ftype == "conv":  # replies, reactions, edits, deletes, typing, read marks, rename
        from .conversation.relay_frames import decode_client_conv

        return decode_client_conv
    if ftype in ("upload", "chunk", "share", "fetch", "drop"):  # files (files/relay_frames.py)
        from .files.relay_frames import decode_client_files

        return lambda obj: decode_client_files(obj, ftype)
    if ftype == "room":  # a private room's passphrase (room_frames.py)
        from .room_frames import decode_client_room

        return decode_client_room
    return None


# ---- frames the host sends ----


@dataclass(frozen=True)
class RelayWelcome:
    """The host accepted ``hello``: you are in the chat as ``name``; ``peer`` is the host's peer
    id (the origin of what this client writes, so it can show delivery marks)."""

    name: str
    peer: str = ""


@dataclass(frozen=True)
class RelayOnline:
    """Who is online (people here and behind LAN peers) and which LAN devices the host sees."""

    people: tuple[Online, ...]
    devices: tuple[Online, ...] = ()


@dataclass(frozen=True)
class RelayChannels:
    """The channels this client may see (ordinary ones and its own direct messages)."""

    channels: tuple[str, ...]


@dataclass(frozen=True)
class RelayPage:
    """An answer to ``history``: ``msgs`` oldest first, ``pending`` the ones written on the host
    no peer has confirmed yet, ``more`` whether older ones exist."""

    req: int
    channel: str
    msgs: tuple[Message, ...]
    pending: tuple[str, ...]
    more: bool


@dataclass(frozen=True)
class RelayFound:
    """An answer to ``search``: (message, snippet) pairs, newest first."""

    req: int
    results: tuple[tuple[Message, str], ...]


@dataclass(frozen=True)
class RelayDelivered:
    """Peers confirmed these messages written on the host (the "delivered" tick)."""

    ids: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class RelayProblems:
    """What is wrong on the host now (e.g. its history went read-only), for the problem banner;
    ``not_saved``: messages written on the host that went out but were not saved there."""

    problems: tuple[str, ...]
    not_saved: tuple[str, ...] = ()


ServerFrame = (
    MsgFrame | SyncFrame | Pong | RelayWelcome | RelayOnline | RelayChannels | RelayPage
    | RelayFound | RelayDelivered | RelayProblems
)


def encode_welcome(name: str, peer: str = "") -> str:
    """``peer`` is the host's peer id: the origin of messages written through it."""
    return _dumps({"v": PROTOCOL_VERSION, "type": "welcome", "name": name, "peer": peer})


def encode_channels(channels: Sequence[str]) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "channels",
                   "channels": list(channels)[:MAX_CHANNELS_LISTED]})


def _fit(build: Callable[[int], str], count: int) -> str:
    """The frame from ``build(n)`` with the largest n <= count that fits ``MAX_FRAME_BYTES``."""
    while True:
        text = build(count)
        if len(text.encode("utf-8")) <= MAX_FRAME_BYTES or count == 0:
            return text
        count //= 2


def encode_page(req: int, channel: str, msgs: Sequence[Message], pending: Iterable[str],
                more: bool) -> str:
    """A ``page``; when the messages do not fit one frame, the newest that do (and ``more``)."""
    msgs = list(msgs)[-RELAY_PAGE:]
    pend = set(pending)

    def build(n: int) -> str:
        part = msgs[len(msgs) - n:] if n else []
        return _dumps({
            "v": PROTOCOL_VERSION, "type": "page", "req": req, "channel": channel,
            "msgs": [_msg_dict(m, "") for m in part],
            "pending": [m.id for m in part if m.id in pend][:MAX_IDS],
            "more": more or n < len(msgs),
        })

    return _fit(build, len(msgs))


def encode_found(req: int, results: Sequence[tuple[Message, str]]) -> str:
    results = list(results)[:RELAY_RESULTS]

    def build(n: int) -> str:
        return _dumps({
            "v": PROTOCOL_VERSION, "type": "found", "req": req,
            "results": [{"msg": _msg_dict(m, ""), "snippet": s[:MAX_SNIPPET_CHARS]}
                        for m, s in results[:n]],
        })

    return _fit(build, len(results))


def encode_delivered(ids: Sequence[str], at: float) -> list[str]:
    return [_dumps({"v": PROTOCOL_VERSION, "type": "delivered", "ids": list(ids[i:i + MAX_IDS]),
                    "at": at}) for i in range(0, len(ids), MAX_IDS)]


def encode_problems(problems: Sequence[str], not_saved: Sequence[str] = ()) -> list[str]:
    """The host's current problems (an empty list: none any more), clipped to the frame's limits;
    ``not_saved`` ids beyond ``MAX_IDS`` go in further frames."""
    clipped = [p[:MAX_PROBLEM_CHARS] for p in problems[:MAX_PROBLEMS]]
    chunks = [list(not_saved[i:i + MAX_IDS]) for i in range(0, len(not_saved), MAX_IDS)] or [[]]
    return [_dumps({"v": PROTOCOL_VERSION, "type": "problems", "problems": clipped,
                    "not_saved": ids}) for ids in chunks]


def _online_list(entries: Iterable[Online]) -> list[dict[str, Any]]:
    out = []
    for o in entries:
        if len(out) == MAX_ONLINE_ENTRIES:
            break
        out.append({"name": o.name, "device": o.device[:32], "since": o.since, "local": o.local})
    return out


def encode_online(people: Sequence[Online], devices: Sequence[Online] = ()) -> str:
    return _dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": "online",
            "people": _online_list(people),
            "devices": _online_list(devices),
        }
    )


def encode_history(messages: Sequence[Message]) -> list[str]:
    """Recent messages for a newly connected client: peer-protocol ``sync`` frames."""
    return encode_sync(messages, RELAY_HISTORY)


def _decode_online_entries(value: object, key: str) -> tuple[Online, ...]:
    if not isinstance(value, list) or len(value) > MAX_ONLINE_ENTRIES:
        raise ProtocolError(f"online.{key} must be a list of at most {MAX_ONLINE_ENTRIES}")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ProtocolError(f"online.{key} entries must be objects")
        try:
            name = validate_name(entry.get("name"))
        except ValidationError as err:
            raise ProtocolError(f"online.{key}.name: {err}") from None
        device = entry.get("device")
        since = entry.get("since")
        local = entry.get("local")
        if not isinstance(device, str) or not 0 < len(device) <= 32 or not device.isprintable():
            raise ProtocolError(f"online.{key}.device must be a short string")
        if (
            isinstance(since, bool)
            or not isinstance(since, (int, float))
            or not math.isfinite(since)
        ):
            raise ProtocolError(f"online.{key}.since must be a number")
        if not isinstance(local, bool):
            raise ProtocolError(f"online.{key}.local must be true or false")
        out.append(Online(f"{i}/{name}", name, device, float(since), local))
    return tuple(out)


def _decode_welcome(obj: dict[str, Any]) -> RelayWelcome:
    try:
        name = validate_name(obj.get("name"))
        peer = obj.get("peer", "")
        peer = validate_id(peer, "peer id") if peer else ""
    except ValidationError as err:
        raise ProtocolError(f"welcome: {err}") from None
    return RelayWelcome(name, peer)


def _decode_channels(obj: dict[str, Any]) -> RelayChannels:
    value = obj.get("channels")
    if not isinstance(value, list) or len(value) > MAX_CHANNELS_LISTED:
        raise ProtocolError(f"channels.channels must be a list of at most "
                            f"{MAX_CHANNELS_LISTED}")
    return RelayChannels(tuple(_channel({"channel": c}, "channels") for c in value))


def _decode_page(obj: dict[str, Any]) -> RelayPage:
    msgs = obj.get("msgs")
    if not isinstance(msgs, list) or len(msgs) > RELAY_PAGE:
        raise ProtocolError(f"page.msgs must be a list of at most {RELAY_PAGE}")
    more = obj.get("more")
    if not isinstance(more, bool):
        raise ProtocolError("page.more must be true or false")
    return RelayPage(_req(obj, "page"), _channel(obj, "page"),
                     tuple(_decode_message(m, "page", "msgs")[0] for m in msgs),
                     _ids(obj, "pending", "page"), more)


def _decode_found(obj: dict[str, Any]) -> RelayFound:
    results = obj.get("results")
    if not isinstance(results, list) or len(results) > RELAY_RESULTS:
        raise ProtocolError(f"found.results must be a list of at most {RELAY_RESULTS}")
    out = []
    for r in results:
        if not isinstance(r, dict):
            raise ProtocolError("found.results entries must be objects")
        msg = _decode_message(r.get("msg"), "found", "msg")[0]
        out.append((msg, _str_field_marks(r, "snippet", "found")))
    return RelayFound(_req(obj, "found"), tuple(out))


def _decode_delivered(obj: dict[str, Any]) -> RelayDelivered:
    at = obj.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ProtocolError("delivered.at must be a number")
    return RelayDelivered(_ids(obj, "ids", "delivered"), float(at))


def _decode_problems(obj: dict[str, Any]) -> RelayProblems:
    value = obj.get("problems")
    if not isinstance(value, list) or len(value) > MAX_PROBLEMS:
        raise ProtocolError(f"problems.problems must be a list of at most {MAX_PROBLEMS}")
    problems = tuple(_str_field({"p": p}, "p", "problems", MAX_PROBLEM_CHARS) for p in value)
    if not all(p.strip() for p in problems):
        raise ProtocolError("problems.problems must not hold blank sentences")
    return RelayProblems(problems, _ids(obj, "not_saved", "problems"))


def _decode_online(obj: dict[str, Any]) -> RelayOnline:
    return RelayOnline(
        _decode_online_entries(obj.get("people"), "people"),
        _decode_online_entries(obj.get("devices", []), "devices"),
    )


# The relay's own server frames, by type; the peer-protocol ones are decoded by ``decode_frame``.
_SERVER_DECODERS: dict[str, Callable[[dict[str, Any]], ServerFrame]] = {
    "welcome": _decode_welcome,
    "channels": _decode_channels,
    "page": _decode_page,
    "found": _decode_found,
    "delivered": _decode_delivered,
    "online": _decode_online,
    "problems": _decode_problems,
}


def decode_server_frame(data: str | bytes) -> ServerFrame:
    """What a static client does with a frame from the host; ``ProtocolError`` if it is broken."""
    if frame_type(data) in ("msg", "sync", "pong"):  # peer-protocol frames, at its version
        frame = decode_frame(data)
        assert isinstance(frame, (MsgFrame, SyncFrame, Pong))
        return frame
    obj, ftype = _head(data)
    decoder = _SERVER_DECODERS.get(ftype)
    if decoder is None:
        from .conversation.relay_frames import SERVER_DECODERS  # row, typing, marks, done

        decoder = SERVER_DECODERS.get(ftype)  # type: ignore[assignment]
    if decoder is None:
        from .files.relay_frames import SERVER_DECODERS as FILE_DECODERS  # slot, ack, file

        decoder = FILE_DECODERS.get(ftype)  # type: ignore[assignment]
    if decoder is None:
        from .room_frames import SERVER_DECODERS as ROOM_DECODERS  # opened

        decoder = ROOM_DECODERS.get(ftype)  # type: ignore[assignment]
    if decoder is None:
        raise ProtocolError(f"unknown relay frame type {clip_reason(ftype, 20)!r}")
    return decoder(obj)


def _str_field_marks(obj: dict[str, Any], key: str, ftype: str) -> str:
    """A snippet: a string of at most MAX_SNIPPET_CHARS whose only control characters are the
    store's match marks (\x02, \x03)."""
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > MAX_SNIPPET_CHARS:
        raise ProtocolError(f"{ftype}.{key} must be a string of at most {MAX_SNIPPET_CHARS}")
    _str_field({key: value.replace("\x02", "").replace("\x03", "")}, key, ftype,
               MAX_SNIPPET_CHARS)
    return value


def clip_reason(text: str, limit_bytes: int = REASON_BYTES) -> str:
    """Shorten a close reason to fit ``limit_bytes`` UTF-8 bytes (WebSocket's limit is 123)."""
    if len(text.encode("utf-8")) <= limit_bytes:
        return text
    out = text
    while len((out + "…").encode("utf-8")) > limit_bytes:
        out = out[:-1]
    return out + "…"
