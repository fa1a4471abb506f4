"""Private rooms over the relay, sans-I/O (docs/protocol.md, "Private rooms over the relay").

The static web client cannot seal or open a room's text: the browser build has no
``cryptography``. So it does what a host-mode tab does: it gives the passphrase to the host
(``room``), whose relay session for it derives the key (``room_keys.RoomKeyDeriver``, bounded per
address and in all), seals what the client sends there and tells the client, in an ``opened``
frame before the message itself, what each sealed message of that room says. The key and the
passphrase are the host's to hold, as for its tabs (docs/security.md). Pure: imported by host
mode (``relay_rooms.py``) and the web client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .model import ValidationError, validate_channel, validate_id, validate_text
from .protocol import PROTOCOL_VERSION, ProtocolError
from .relay_protocol import _dumps, _req

MAX_PASSPHRASE_CHARS = 1024  # longer is refused at the edge (scrypt takes any length)


class Opened(StrEnum):
    """How a sealed message of a room the client unlocked came out on the host."""

    OPEN = "open"  # ``text`` is what it says
    REFUSED = "refused"  # it does not open with the room's key (wrong passphrase, or forged)


@dataclass(frozen=True)
class RelayRoom:
    """Unlock ``channel`` (or make it private) with ``passphrase``; answered by ``done``."""

    req: int
    channel: str
    passphrase: str = field(repr=False)


@dataclass(frozen=True)
class RelayOpened:
    """What the sealed message ``id`` of ``channel`` says (its latest edit's text, if edited)."""

    id: str
    channel: str
    how: Opened
    text: str = ""


# ---- client -> host ----
def encode_client_room(req: int, channel: str, passphrase: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "room", "req": req, "channel": channel,
                   "passphrase": passphrase})


def decode_client_room(obj: dict[str, Any]) -> RelayRoom:
    req = _req(obj, "room")
    try:
        channel = validate_channel(obj.get("channel"))
    except ValidationError as err:
        raise ProtocolError(f"room.channel: {err}") from None
    passphrase = obj.get("passphrase")
    if not isinstance(passphrase, str) or len(passphrase) > MAX_PASSPHRASE_CHARS:
        raise ProtocolError(
            f"room.passphrase must be a string of at most {MAX_PASSPHRASE_CHARS} characters")
    return RelayRoom(req, channel, passphrase)


# ---- host -> client ----
def shown_text(text: str) -> str | None:
    """``text`` as an ``opened`` frame may carry it (the chat rule, unchanged), else None: a
    sealed text can hold anything its sealer put in, but nothing the rule refuses reaches a
    client."""
    try:
        return text if text and validate_text(text) == text else None
    except ValidationError:
        return None


def encode_opened(msg_id: str, channel: str, how: Opened, text: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "opened", "id": msg_id, "channel": channel,
                   "how": str(how), "text": text if how is Opened.OPEN else ""})


def decode_opened(obj: dict[str, Any]) -> RelayOpened:
    try:
        msg_id = validate_id(obj.get("id"), "message id")
        channel = validate_channel(obj.get("channel"))
    except ValidationError as err:
        raise ProtocolError(f"opened: {err}") from None
    try:
        how = Opened(obj.get("how"))
    except ValueError:
        raise ProtocolError("opened.how must be open or refused") from None
    text = obj.get("text", "")
    if how is Opened.OPEN and (not isinstance(text, str) or shown_text(text) is None):
        raise ProtocolError("opened.text must follow the chat text rule")
    return RelayOpened(msg_id, channel, how, text if how is Opened.OPEN else "")


SERVER_DECODERS = {"opened": decode_opened}
