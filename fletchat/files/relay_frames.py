"""The relay's file frames (docs/protocol.md, "The relay for static web clients", "Files"):
a static client uploads a file in chunks (``upload`` -> ``slot``, ``chunk`` -> ``ack``, then
``share`` -> ``done``), asks the host to fetch one (``fetch`` -> ``done``) and is told what the host
has (``file``). Pure (no flet, no sockets, no starlette): host mode and the web client import it.

Every number a client sends is a claim: the host counts the bytes itself, caps each chunk, and the
declared size is only the most a slot will take. The name is a display hint the host cleans
(``webfiles.upload_name``); the type is never taken from the client (the host guesses it from
the cleaned name, as for every shared file).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from ..model import DEFAULT_CHANNEL, ValidationError, validate_channel, validate_text
from ..protocol import PROTOCOL_VERSION, ProtocolError, _str_field
from ..relay_protocol import _dumps, _req, decode_sealed, sealed_field
from ..webpaths import OPENED_TOKEN
from . import limits as L
from .views import FileState

RELAY_CHUNK_BYTES = 32 * L.KIB  # raw bytes in one ``chunk`` (base64: 43,692 characters)
RELAY_MAX_UPLOAD_BYTES = 256 * L.MIB  # one file from a static client (it sits in browser memory)
RELAY_WINDOW = 8  # chunks a client sends ahead of the host's acks
MAX_HINT_CHARS = 255  # the file name hint in ``upload``
MAX_REASON_CHARS = 200
_SLOT = re.compile(r"^[0-9a-f]{32}$")
_OF = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_B64_CHARS = 4 * ((RELAY_CHUNK_BYTES + 2) // 3)


# ---- client -> host ----
@dataclass(frozen=True)
class RelayUpload:
    """Open a slot for one file of at most ``size`` bytes; ``name`` is a hint."""

    req: int
    name: str
    size: int


@dataclass(frozen=True)
class RelayChunk:
    """``data`` for slot ``id`` at byte ``offset`` (must equal what the host has counted)."""

    id: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class RelayShare:
    """Post the complete slots ``ids`` as one message with ``caption`` in ``channel``."""

    req: int
    ids: tuple[str, ...]
    caption: str
    channel: str = DEFAULT_CHANNEL
    sealed: bool = False  # the client holds this channel as a private room: refused unless sealed


@dataclass(frozen=True)
class RelayFetch:
    """Have the host download file ``sha256`` (a file of a message this client was sent);
    ``of``: which private-room description of it (``sealed_digest``), "" for any other file."""

    req: int
    sha256: str
    of: str = ""


@dataclass(frozen=True)
class RelayDrop:
    """Abandon slot ``id`` (the host deletes what it received)."""

    id: str


def encode_client_upload(req: int, name: str, size: int) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "upload", "req": req, "name": name,
                   "size": size})


def encode_client_chunk(slot: str, offset: int, data: bytes) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "chunk", "id": slot, "offset": offset,
                   "data": base64.b64encode(data).decode("ascii")})


def encode_client_share(req: int, ids: list[str], caption: str, channel: str,
                        sealed: bool = False) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "share", "req": req, "ids": ids,
                   "caption": caption, "channel": channel, **sealed_field(sealed)})


def encode_client_fetch(req: int, sha256: str, of: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "fetch", "req": req, "sha256": sha256,
                   **({"of": of} if of else {})})


def file_key(sha256: str, of: str = "") -> str:
    """What a client's file states are kept under: the blob, and for a room's file its
    description."""
    return f"{sha256}:{of}" if of else sha256


def _of(obj: dict[str, Any], ftype: str) -> str:
    value = obj.get("of", "")
    if not isinstance(value, str) or (value and not _OF.fullmatch(value)):
        raise ProtocolError(f"{ftype}.of must be 32 lowercase hex digits")
    return value


def encode_client_drop(slot: str) -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "drop", "id": slot})


def _int(obj: dict[str, Any], key: str, ftype: str, low: int, high: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{ftype}.{key} must be an integer {low}-{high}")
    return value


def _slot(value: object, ftype: str) -> str:
    if not isinstance(value, str) or not _SLOT.match(value):
        raise ProtocolError(f"{ftype}.id must be a slot id (32 lowercase hex digits)")
    return value


def _sha(value: object, ftype: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ProtocolError(f"{ftype}.sha256 must be 64 lowercase hex digits")
    return value


def _data(value: object) -> bytes:
    if not isinstance(value, str) or not 0 < len(value) <= _B64_CHARS or len(value) % 4:
        raise ProtocolError(f"chunk.data must be base64 of 1-{RELAY_CHUNK_BYTES} bytes")
    if not _B64.match(value):
        raise ProtocolError("chunk.data is not base64")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("chunk.data is not base64") from None
    if not 0 < len(data) <= RELAY_CHUNK_BYTES:
        raise ProtocolError(f"chunk.data must be base64 of 1-{RELAY_CHUNK_BYTES} bytes")
    return data


def decode_client_files(obj: dict[str, Any], ftype: str) -> object:
    """One of the file frames (``upload``, ``chunk``, ``share``, ``fetch``, ``drop``)."""
    if ftype == "upload":
        return RelayUpload(_req(obj, "upload"), _str_field(obj, "name", "upload", MAX_HINT_CHARS),
                           _int(obj, "size", "upload", 1, RELAY_MAX_UPLOAD_BYTES))
    if ftype == "chunk":
        return RelayChunk(_slot(obj.get("id"), "chunk"),
                          _int(obj, "offset", "chunk", 0, RELAY_MAX_UPLOAD_BYTES - 1),
                          _data(obj.get("data")))
    if ftype == "share":
        ids = obj.get("ids")
        if not isinstance(ids, list) or not 0 < len(ids) <= L.MAX_FILES_PER_MESSAGE:
            raise ProtocolError(f"share.ids must list 1-{L.MAX_FILES_PER_MESSAGE} slot ids")
        slots = tuple(_slot(i, "share") for i in ids)
        if len(set(slots)) != len(slots):
            raise ProtocolError("share.ids lists a slot twice")
        try:
            caption = validate_text(obj.get("caption", "")) or ""
            channel = validate_channel(obj.get("channel", DEFAULT_CHANNEL))
        except ValidationError as err:
            raise ProtocolError(f"share: {err}") from None
        return RelayShare(_req(obj, "share"), slots, caption, channel,
                          decode_sealed(obj, "share"))
    if ftype == "fetch":
        return RelayFetch(_req(obj, "fetch"), _sha(obj.get("sha256"), "fetch"), _of(obj, "fetch"))
    if ftype == "drop":
        return RelayDrop(_slot(obj.get("id"), "drop"))
    raise ProtocolError(f"unknown relay file frame {ftype!r}")


CLIENT_FILE_TYPES = ("upload", "chunk", "share", "fetch", "drop")


# ---- host -> client ----
@dataclass(frozen=True)
class RelaySlot:
    """The answer to ``upload``: slot ``id`` taking chunks of at most ``chunk`` bytes, or why not."""

    req: int
    id: str = ""
    chunk: int = RELAY_CHUNK_BYTES
    error: str = ""


@dataclass(frozen=True)
class RelayAck:
    """The host stored slot ``id`` up to ``received`` bytes (``error``: the slot is gone, why)."""

    id: str
    received: int
    error: str = ""


@dataclass(frozen=True)
class RelayFileState:
    """What the host has of file ``sha256``: a ``FileState`` value, progress, and whether its
    thumbnail is stored there (both then downloadable from the host's ``/files/blob/``)."""

    sha256: str
    state: FileState
    done: int
    size: int
    thumb: bool = False
    reason: str = ""
    # A private room's file the client unlocked: what the sealed description says, and the
    # token of the link its connection loads the opened copy from (``webopened``) once stored.
    name: str = ""
    mime: str = ""
    opened: str = ""
    of: str = ""  # a room's file: which description of the blob this is about (``sealed_digest``)


def encode_slot(req: int, slot: str = "", error: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "slot", "req": req, "id": slot,
                   "chunk": RELAY_CHUNK_BYTES, "error": error[:MAX_REASON_CHARS]})


def encode_ack(slot: str, received: int, error: str = "") -> str:
    return _dumps({"v": PROTOCOL_VERSION, "type": "ack", "id": slot, "received": received,
                   "error": error[:MAX_REASON_CHARS]})


def encode_file_state(file: RelayFileState) -> str:
    frame = {"v": PROTOCOL_VERSION, "type": "file", "sha256": file.sha256, "state": file.state,
             "done": file.done, "size": file.size, "thumb": file.thumb,
             "reason": file.reason[:MAX_REASON_CHARS]}
    if file.of:
        frame["of"] = file.of
    if file.name:  # a sealed file of a room the client unlocked
        frame.update(name=file.name, mime=file.mime, opened=file.opened)
    return _dumps(frame)


def _error(obj: dict[str, Any], ftype: str) -> str:
    return _str_field(obj, "error", ftype, MAX_REASON_CHARS, default="")


def _decode_slot(obj: dict[str, Any]) -> RelaySlot:
    error = _error(obj, "slot")
    slot = obj.get("id", "")
    return RelaySlot(_req(obj, "slot"), "" if error else _slot(slot, "slot"),
                     _int(obj, "chunk", "slot", 1, RELAY_CHUNK_BYTES), error)


def _decode_ack(obj: dict[str, Any]) -> RelayAck:
    return RelayAck(_slot(obj.get("id"), "ack"),
                    _int(obj, "received", "ack", 0, RELAY_MAX_UPLOAD_BYTES), _error(obj, "ack"))


def _decode_file(obj: dict[str, Any]) -> RelayFileState:
    try:
        state = FileState(obj.get("state"))
    except ValueError:
        raise ProtocolError("file.state is not a known file state") from None
    thumb = obj.get("thumb", False)
    if not isinstance(thumb, bool):
        raise ProtocolError("file.thumb must be true or false")
    return RelayFileState(_sha(obj.get("sha256"), "file"), state,
                          _int(obj, "done", "file", 0, L.MAX_FILE_BYTES),
                          _int(obj, "size", "file", 0, L.MAX_FILE_BYTES), thumb,
                          _str_field(obj, "reason", "file", MAX_REASON_CHARS, default=""),
                          *_opened_fields(obj), _of(obj, "file"))


def _opened_fields(obj: dict[str, Any]) -> tuple[str, str, str]:
    """``name``, ``mime`` and ``opened`` of a room's file (all "" for any other file)."""
    if "name" not in obj:
        return "", "", ""
    from .manifest import validate_file_name, validate_mime

    try:
        name, mime = validate_file_name(obj.get("name")), validate_mime(obj.get("mime"))
    except ValidationError as err:
        raise ProtocolError(str(err)) from None
    opened = obj.get("opened", "")
    if not isinstance(opened, str) or (opened and not OPENED_TOKEN.fullmatch(opened)):
        raise ProtocolError("file.opened must be a link token")
    return name, mime, opened


SERVER_DECODERS = {"slot": _decode_slot, "ack": _decode_ack, "file": _decode_file}
