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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .events import Online
from .model import (
    Message,
    ValidationError,
    validate_name,
    validate_text,
)
from .protocol import (
    PROTOCOL_VERSION,
    MsgFrame,
    Pong,
    ProtocolError,
    SyncFrame,
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
MAX_RELAY_CLIENTS = 256  # connections at once; more are refused with CLOSE_TRY_AGAIN
RELAY_QUEUE = 1000  # events waiting to be sent to one client; a client that falls further behind
#                     is disconnected (it reconnects and gets the recent history again)
MAX_ONLINE_ENTRIES = 200  # people (and devices) listed in one ``online`` frame
RELAY_HISTORY = 100  # recent messages sent on connect (like a peer's sync)

CLOSE_TRY_AGAIN = 1013  # too many relay clients, or the client fell behind
REASON_BYTES = 123  # a WebSocket close reason fits 123 UTF-8 bytes


# ---- frames the client sends ----


@dataclass(frozen=True)
class RelayHello:
    """Join the chat under ``name`` (validated with ``model.validate_name``)."""

    name: str


@dataclass(frozen=True)
class RelaySend:
    """Post ``text`` (validated with ``model.validate_text``; ``None`` = whitespace only)."""

    text: str | None


@dataclass(frozen=True)
class RelayPing:
    """Are you there? The host answers with a peer-protocol ``pong``."""


ClientFrame = RelayHello | RelaySend | RelayPing


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_client_hello(name: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "hello", "name": name})


def encode_client_send(text: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "send", "text": text})


def encode_client_ping() -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "ping"})


def _head(data: str | bytes) -> tuple[dict[str, Any], str]:
    return parse_head(data, speaker="relay")


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Parse and validate one frame from a static client; ``ProtocolError`` says what is wrong."""
    obj, ftype = _head(data)
    if ftype == "hello":
        try:
            return RelayHello(validate_name(obj.get("name")))
        except ValidationError as err:
            raise ProtocolError(f"hello.name: {err}") from None
    if ftype == "send":
        try:
            return RelaySend(validate_text(obj.get("text")))
        except ValidationError as err:
            raise ProtocolError(f"send.text: {err}") from None
    if ftype == "ping":
        return RelayPing()
    raise ProtocolError(f"unknown relay frame type {clip_reason(ftype, 20)!r}")


# ---- frames the host sends ----


@dataclass(frozen=True)
class RelayWelcome:
    """The host accepted ``hello``: you are in the chat as ``name``."""

    name: str


@dataclass(frozen=True)
class RelayOnline:
    """Who is online (people here and behind LAN peers) and which LAN devices the host sees."""

    people: tuple[Online, ...]
    devices: tuple[Online, ...] = ()


ServerFrame = MsgFrame | SyncFrame | Pong | RelayWelcome | RelayOnline


def encode_welcome(name: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "welcome", "name": name})


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


def decode_server_frame(data: str | bytes) -> ServerFrame:
    """What a static client does with a frame from the host; ``ProtocolError`` if it is broken."""
    if frame_type(data) in ("msg", "sync", "pong"):  # peer-protocol frames, at its version
        frame = decode_frame(data)
        assert isinstance(frame, (MsgFrame, SyncFrame, Pong))
        return frame
    obj, ftype = _head(data)
    if ftype == "welcome":
        try:
            return RelayWelcome(validate_name(obj.get("name")))
        except ValidationError as err:
            raise ProtocolError(f"welcome.name: {err}") from None
    if ftype == "online":
        return RelayOnline(
            _decode_online_entries(obj.get("people"), "people"),
            _decode_online_entries(obj.get("devices", []), "devices"),
        )
    raise ProtocolError(f"unknown relay frame type {clip_reason(ftype, 20)!r}")


def clip_reason(text: str, limit_bytes: int = REASON_BYTES) -> str:
    """Shorten a close reason to fit ``limit_bytes`` UTF-8 bytes (WebSocket's limit is 123)."""
    if len(text.encode("utf-8")) <= limit_bytes:
        return text
    out = text
    while len((out + "…").encode("utf-8")) > limit_bytes:
        out = out[:-1]
    return out + "…"
