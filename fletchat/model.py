"""The pure core: messages, peers, validation and limits.

Nothing here imports flet, sockets or sqlite, so every layer (UI, hub, mesh, store) can share one
``Message`` type and one set of rules, and tests can drive them without I/O.
"""

from __future__ import annotations

import re
import time
import unicodedata
import uuid
import zlib
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conversation.fields import ConvFields

# ---- limits (named so every layer enforces the same numbers) ----
MAX_NAME_CHARS = 32
MAX_MESSAGE_CHARS = 4000
MAX_CHANNEL_CHARS = 80  # room for a direct-message channel: "@" + two names
MAX_SEQ = 2**53  # per-origin sequence numbers stay exact in JSON everywhere
MAX_ID_CHARS = 64
MAX_FRAME_BYTES = 64 * 1024
HISTORY_IN_MEMORY = 500
MAX_PRESENCE_PER_PEER = 64
MAX_FILES_PER_MESSAGE = 10  # = files.limits.MAX_FILES_PER_MESSAGE (docs/protocol.md "Files")  # people one connected peer may say are on it (``presence`` frame)

# ---- acceptance (docs/protocol.md "Acceptance", docs/security.md) ----
# Presence: what one connected peer may say is on it (its ``presence`` list is cut to this).
# Quotas per origin, counted on the message's own clock stamp (so they hold the same for live
# messages and for catch-up, which carries the original stamps): per stamp minute and per day.
# A host-mode server is ONE origin for all its tabs: 1,200 a minute is 20 messages a second for a
# whole classroom, far above a real conversation and far below a flood (6,255 in 23 s).
MAX_ORIGIN_MESSAGES_PER_MINUTE = 1_200
MAX_ORIGIN_BYTES_PER_MINUTE = 1024 * 1024  # UTF-8 bytes of text
MAX_ORIGIN_MESSAGES_PER_DAY = 50_000
MAX_ORIGIN_CHANNELS_PER_DAY = 20  # new channels an origin may bring to this device
# Per connection, per wall-clock minute: origins never seen here before, and unverified messages
# (origins whose key is unknown here can be named freely, so they share this one budget).
MAX_NEW_ORIGINS_PER_PEER_MINUTE = 64
MAX_UNVERIFIED_PER_PEER_MINUTE = 20_000
QUOTA_ORIGINS_TRACKED = 8_192  # quota counters kept in memory (least recently used dropped)

DEFAULT_CHANNEL = "general"

KIND_CHAT = "chat"
KIND_JOIN = "join"
KIND_LEAVE = "leave"
KIND_CHANNEL = "channel"  # "NAME created #x": how a new, still empty channel reaches the LAN
# The conversation kinds (fletchat/conversation, docs/protocol.md "Conversation"): events about
# another message (never a row of their own) and the rename notice (a row, like join/leave).
KIND_REACTION = "reaction"
KIND_EDIT = "edit"
KIND_DELETE = "delete"
KIND_RENAME = "rename"
EVENT_KINDS = (KIND_REACTION, KIND_EDIT, KIND_DELETE)
ROW_KINDS = (KIND_CHAT, KIND_JOIN, KIND_LEAVE, KIND_CHANNEL, KIND_RENAME)  # shown as rows
MESSAGE_KINDS = (KIND_CHAT, KIND_JOIN, KIND_LEAVE, KIND_CHANNEL, *EVENT_KINDS, KIND_RENAME)
_TEXT_KINDS = (KIND_CHAT, KIND_EDIT)
_CONV_KEYS = ("reply", "redacted")  # fields that make a chat message a conversation one

# A hybrid-logical-clock stamp as encoded by ``clock.Stamp.encode`` (checked here without importing
# the clock, which depends on this module): 12 hex digits of ms, 4 of counter, then the node id.
_HLC_RE = re.compile(r"^[0-9a-f]{12}\.[0-9a-f]{4}\.[A-Za-z0-9_.:-]{1,64}$")

# The tutorial's avatar palette.
AVATAR_COLORS = (
    "amber",
    "blue",
    "brown",
    "cyan",
    "green",
    "indigo",
    "lime",
    "orange",
    "pink",
    "purple",
    "red",
    "teal",
    "yellow",
)

_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


# Zero-width (non-)joiners are ordinary parts of Persian, Indic and emoji spelling, not controls.
JOINERS = "\u200c\u200d"


class FletChatError(Exception):
    """The root of every error Flet Chat raises on purpose (validation, store, protocol, rooms,
    trust...): ``except FletChatError`` catches ours and nothing else."""


class ValidationError(FletChatError, ValueError):
    """Input that breaks a rule; ``str(err)`` is a sentence fit to show the person who sent it."""


# ASCII's only control characters (category Cc; ASCII has no Cf): the fast path for ASCII text.
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_CONTROLS_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _has_control_chars(text: str, allow_newlines: bool = False) -> bool:
    if text.isascii():
        rule = _ASCII_CONTROLS_BUT_NEWLINES if allow_newlines else _ASCII_CONTROLS
        return rule.search(text) is not None
    for ch in text:
        if allow_newlines and ch in "\n\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Cf") and ch not in JOINERS:
            return True
    return False


# What shows as nothing in a name: joiners, fillers (Hangul, Braille blank), the Mongolian vowel
# separator, the combining grapheme joiner, variation selectors.
_INVISIBLE_IN_NAMES = dict.fromkeys([
    *map(ord, "\u200c\u200d\u3164\u115f\u1160\uffa0\u2800\u180e\u034f"),
    *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0),
])


def name_key(name: str) -> str:
    """What two names are compared by where a name must not be taken twice (a host's people):
    NFKC, case folded, without characters that show as nothing, spaces collapsed. "Alice",
    "ALICE" and "Alice" with a Hangul filler are one name; look-alike letters of other scripts
    (Cyrillic "А") are not caught."""
    text = unicodedata.normalize("NFKC", name).translate(_INVISIBLE_IN_NAMES)
    return " ".join(text.casefold().split())


def validate_name(raw: object) -> str:
    """Return the trimmed display name, or raise ``ValidationError`` saying what is wrong."""
    if not isinstance(raw, str):
        raise ValidationError("Name must be text.")
    name = raw.strip()
    if not name:
        raise ValidationError("Name cannot be blank!")
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError(f"Name is too long (at most {MAX_NAME_CHARS} characters).")
    if _has_control_chars(name):
        raise ValidationError("Name cannot contain control characters.")
    return name


def validate_text(raw: object) -> str | None:
    """Return the trimmed message text, ``None`` for whitespace only, or raise if over the limit."""
    if not isinstance(raw, str):
        raise ValidationError("Message must be text.")
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return None
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError(
            f"Message is too long: {len(text)} characters (at most {MAX_MESSAGE_CHARS})."
        )
    if _has_control_chars(text, allow_newlines=True):
        raise ValidationError("Message cannot contain control characters.")
    return text


def validate_id(raw: object, what: str = "id") -> str:
    """An opaque identifier from outside: short, printable ASCII, no spaces."""
    if not isinstance(raw, str) or not _ID_RE.fullmatch(raw):
        raise ValidationError(f"Invalid {what}.")
    return raw


def validate_channel(raw: object) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_CHANNEL_CHARS:
        raise ValidationError("Invalid channel.")
    if _has_control_chars(raw) or raw != raw.strip():
        raise ValidationError("Invalid channel.")
    return raw


def _now_ms() -> float:
    """Now, in unix seconds with at most 3 decimals: the signed bytes carry ``ts`` in integer
    milliseconds (docs/protocol.md), so what is sent is exactly what is signed."""
    return round(time.time(), 3)


def new_id() -> str:
    """A globally unique id (128 random bits, hex)."""
    return uuid.uuid4().hex


def initials(name: str) -> str:
    """Up to two letters for the avatar: first letters of the first two words ("Ada Lovelace" -> "AL")."""
    words = [w for w in name.split() if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:1].upper()
    return (words[0][:1] + words[1][:1]).upper()


def avatar_color(name: str) -> str:
    """A palette colour chosen by crc32 of the name: the same in every process and on every platform."""
    return AVATAR_COLORS[zlib.crc32(name.encode("utf-8")) % len(AVATAR_COLORS)]


OCTET_STREAM = "application/octet-stream"


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a ``size``-byte file; an empty file still has one (empty) chunk."""
    return max(1, -(-size // chunk_size))


@dataclass(frozen=True)
class FileRef:
    """A file attached to a message (docs/protocol.md "Files"): content-addressed by ``sha256`` and
    ``size``, chunks checked against the Merkle ``root``. ``name`` and ``mime`` are display only,
    never a path. A sealed file (private room) shows neither: its description is in ``sealed``.
    Validation of network input: ``FileRef.from_wire`` (``fletchat.files.manifest``)."""

    sha256: str  # hex SHA-256 of the stored bytes (for a sealed file: of the sealed blob)
    size: int
    chunk_size: int
    root: str  # hex RFC 6962 Merkle root over the chunks
    name: str = ""  # display only; "" when sealed
    mime: str = OCTET_STREAM
    sealed: str | None = None  # sealed name/type/key (files.sealed); None = plain
    thumb: FileRef | None = None  # a small image (<= MAX_THUMB_BYTES) fetched like a file
    ms: int | None = None  # voice note duration

    @property
    def is_sealed(self) -> bool:
        return self.sealed is not None

    @property
    def chunk_count(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    def chunk_span(self, index: int) -> tuple[int, int]:
        """(offset, length) of chunk ``index``."""
        if not 0 <= index < self.chunk_count:
            raise IndexError(index)
        offset = index * self.chunk_size
        return offset, min(self.chunk_size, self.size - offset)

    @property
    def is_image(self) -> bool:
        return self.sealed is None and self.mime.startswith("image/")

    @property
    def is_voice(self) -> bool:
        return self.sealed is None and self.mime.startswith("audio/")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "size": self.size, "chunk": self.chunk_size,
                               "root": self.root}
        if self.sealed is not None:
            out["sealed"] = self.sealed
        else:
            out["name"] = self.name
            out["mime"] = self.mime
        if self.thumb is not None:
            out["thumb"] = self.thumb.to_wire()
        if self.ms is not None:
            out["ms"] = self.ms
        return out

    @classmethod
    def from_wire(cls, obj: object) -> FileRef:
        """Validate one entry of a message's ``files`` list; ``ValidationError`` says what is wrong."""
        from .files.manifest import manifest_from_wire  # the rules live with the other file code

        return manifest_from_wire(obj)


def _files_from(raw: object, kind: object) -> tuple[FileRef, ...]:
    if raw is None:
        return ()
    if kind != KIND_CHAT:
        raise ValidationError("Only chat messages carry files.")
    from .files.manifest import files_from_wire  # the rules live with the other file code

    return files_from_wire(raw)


@dataclass(frozen=True)
class Message:
    """One chat event. Local code and validated network frames produce the same type."""

    id: str
    kind: str
    author: str
    origin: str  # peer id of the install (or host) where the message was written
    text: str
    ts: float  # unix seconds on the author's clock
    channel: str = DEFAULT_CHANNEL
    hlc: str = ""  # hybrid logical clock stamp: the order every peer shows ("" until stamped)
    seq: int = 0  # the origin's own counter (1, 2, ...) for catch-up; 0 = none
    files: tuple[FileRef, ...] = ()  # attachments (kind chat only); () = none
    # Conversation fields (reply, target, emoji, ...; conversation/fields.py); None for most.
    conv: ConvFields | None = None

    @classmethod
    def chat(cls, author: str, text: str, origin: str, channel: str = DEFAULT_CHANNEL,
             files: tuple[FileRef, ...] = ()) -> Message:
        """A message to post; with ``files`` the text (caption) may be empty."""
        clean = validate_text(text)
        if clean is None and not files:
            raise ValidationError("Message is empty.")
        if len(files) > MAX_FILES_PER_MESSAGE:
            raise ValidationError(f"At most {MAX_FILES_PER_MESSAGE} files per message.")
        return cls(new_id(), KIND_CHAT, validate_name(author), origin, clean or "", _now_ms(), channel,
                   files=tuple(files))

    @classmethod
    def presence(cls, kind: str, author: str, origin: str) -> Message:
        if kind not in (KIND_JOIN, KIND_LEAVE):
            raise ValidationError("Invalid presence kind.")
        return cls(new_id(), kind, validate_name(author), origin, "", _now_ms())

    @classmethod
    def channel_created(cls, author: str, origin: str, channel: str) -> Message:
        return cls(
            new_id(), KIND_CHANNEL, validate_name(author), origin, "", _now_ms(),
            validate_channel(channel),
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire object: a shallow copy of the fields (``asdict`` deep-copies every value and
        was the largest single cost of encoding catch-up frames); ``files`` only when there are
        some (absent = none, ``[]`` is invalid); the conversation fields flattened in."""
        out = {name: getattr(self, name) for name in _MESSAGE_FIELDS}
        del out["files"], out["conv"]
        if self.files:
            out["files"] = [f.to_wire() for f in self.files]
        if self.conv is not None:
            out.update(self.conv.to_wire(self.kind))
        return out

    @classmethod
    def from_dict(cls, data: object) -> Message:
        """Validate an untrusted mapping (e.g. a decoded frame) into a ``Message``."""
        if not isinstance(data, dict):
            raise ValidationError("Message must be an object.")
        kind = data.get("kind")
        if kind not in MESSAGE_KINDS:
            raise ValidationError("Unknown message kind.")
        ts = data.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not (0 <= ts < 1e11):
            raise ValidationError("Invalid timestamp.")
        conv = None
        if kind not in MESSAGE_KINDS[:4] or any(k in data for k in _CONV_KEYS):
            from .conversation.fields import ConvFields

            conv = ConvFields.from_wire(data, kind)
        text = data.get("text", "")
        files = _files_from(data.get("files"), kind)
        if kind in _TEXT_KINDS and not (conv is not None and conv.redacted is not None):
            clean = validate_text(text)
            if (clean is None and not (files and text == "")) or (clean is not None and clean != text):
                raise ValidationError("Invalid message text.")
        elif text != "":
            raise ValidationError("Presence messages carry no text.")
        hlc = data.get("hlc", "")
        if not isinstance(hlc, str) or (hlc and not _HLC_RE.fullmatch(hlc)):
            raise ValidationError("Invalid clock stamp.")
        seq = data.get("seq", 0)
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise ValidationError("Invalid sequence number.")
        return cls(
            id=validate_id(data.get("id"), "message id"),
            kind=kind,
            author=validate_name(data.get("author")),
            origin=validate_id(data.get("origin"), "origin"),
            text=text,
            ts=float(ts),
            channel=validate_channel(data.get("channel", DEFAULT_CHANNEL)),
            hlc=hlc,
            seq=seq,
            files=files,
            conv=conv,
        )

    @property
    def display_text(self) -> str:
        """What a reader sees: the text, or the tutorial's sentence for presence events."""
        if self.kind == KIND_JOIN:
            return f"{self.author} has joined the chat."
        if self.kind == KIND_LEAVE:
            return f"{self.author} has left the chat."
        if self.kind == KIND_CHANNEL:
            return f"{self.author} created #{self.channel}."
        if self.kind == KIND_RENAME and self.conv is not None:
            return f"{self.conv.was} is now known as {self.author}."
        return self.text


_MESSAGE_FIELDS = tuple(f.name for f in fields(Message))


DEVICE_KINDS = ("desktop", "android", "ios", "web-host", "headless", "browser")


@dataclass(frozen=True)
class Peer:
    """Another copy of the app on the LAN, as discovery and the mesh know it."""

    id: str
    name: str
    device: str = "desktop"
    host: str = ""
    port: int = 0
    since: float = field(default_factory=time.time)
    fingerprint: str = ""  # of its Ed25519 key (identity.fingerprint); "" = not authenticated
