"""Value types and edge validation for the conversation kinds: reply, reaction, edit, delete.

Pure (no flet, sockets or sqlite). Until they are wired into ``model``/``protocol`` the constants
live here; docs/conversation.md is the wire draft they implement. Every ``from_dict`` takes an
untrusted mapping (a decoded frame) and either returns a value or raises ``ValidationError`` with a
sentence fit to show whoever sent it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from ..model import (
    MAX_SEQ,
    ValidationError,
    validate_id,
    validate_name,
    validate_text,
)
from .emoji import REACTION_SET

KIND_REPLY = "reply"  # a chat message that answers another: carries ``ReplyRef``
KIND_REACTION = "reaction"  # toggles one emoji on one message, by one person (stored, caught up)
KIND_EDIT = "edit"  # replaces the text of the author's own message (stored, caught up)
KIND_DELETE = "delete"  # tombstones the author's own message (stored, caught up, wins over edits)
KIND_TYPING = "typing"  # a live frame only: never stored, never in catch-up
KIND_READ = "read"  # a live frame: "I have read #channel up to stamp H" (latest kept per reader)
STORED_KINDS = (KIND_REPLY, KIND_REACTION, KIND_EDIT, KIND_DELETE)
LIVE_KINDS = (KIND_TYPING, KIND_READ)

NOT_AUTHOR = "Only the author can edit or delete this message."  # the refusal, word for word
MAX_SNIPPET_CHARS = 120  # the quoted part of a reply: enough to recognise, short enough to show
MAX_EMOJI_CHARS = 16  # longest accepted reaction string in code points (ZWJ family sequences fit)

# A hybrid-logical-clock stamp (``clock.Stamp.encode``): the same pattern model.py checks.
_HLC_RE = re.compile(r"^[0-9a-f]{12}\.[0-9a-f]{4}\.[A-Za-z0-9_.:-]{1,64}$")


def validate_hlc(raw: object, what: str = "clock stamp") -> str:
    """An HLC stamp from outside; byte order of two valid stamps is their causal order."""
    if not isinstance(raw, str) or not _HLC_RE.fullmatch(raw):
        raise ValidationError(f"Invalid {what}.")
    return raw


def make_snippet(text: str, limit: int = MAX_SNIPPET_CHARS) -> str:
    """The quote a reply carries: whitespace collapsed to one line, cut with an ellipsis.

    Carried inside the reply (not looked up) so the row still shows what was answered when the
    parent is not here yet (a late joiner, an older page not loaded)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "\u2026"


def validate_emoji(raw: object) -> str:
    """A reaction: one entry of the bounded reaction set; length is checked before anything else."""
    if not isinstance(raw, str):
        raise ValidationError("Reaction must be text.")
    if len(raw) > MAX_EMOJI_CHARS:
        raise ValidationError(f"Reaction is too long (at most {MAX_EMOJI_CHARS} characters).")
    if raw not in REACTION_SET:
        raise ValidationError("Unknown reaction: pick one from the emoji picker.")
    return raw


@dataclass(frozen=True)
class ReplyRef:
    """What a reply points at: the parent's id, who wrote it, and a short quote of it."""

    parent_id: str
    parent_author: str
    snippet: str

    @classmethod
    def to(cls, parent: Original) -> ReplyRef:
        return cls(parent.id, parent.author, make_snippet(parent.text))

    def to_dict(self) -> dict[str, Any]:
        return {"parent": self.parent_id, "parent_author": self.parent_author,
                "quote": self.snippet}

    @classmethod
    def from_dict(cls, data: object) -> ReplyRef:
        if not isinstance(data, dict):
            raise ValidationError("Reply reference must be an object.")
        quote = data.get("quote", "")
        if not isinstance(quote, str) or len(quote) > MAX_SNIPPET_CHARS:
            raise ValidationError(f"Reply quote is too long (at most {MAX_SNIPPET_CHARS}).")
        if quote and validate_text(quote) != quote:
            raise ValidationError("Invalid reply quote.")
        if "\n" in quote:
            raise ValidationError("Reply quote must be one line.")
        return cls(
            validate_id(data.get("parent"), "reply parent id"),
            validate_name(data.get("parent_author")),
            quote,
        )


class Original(Protocol):
    """What the reducer needs of the message being modified (``model.Message`` fits)."""

    id: str
    author: str
    origin: str
    text: str
    ts: float
    hlc: str
    channel: str


@dataclass(frozen=True)
class ConvEvent:
    """A stored event about one message (``target``): who sent it, signed by ``origin``'s key.

    ``id`` is the event's own message id (dedupe), ``hlc`` orders events about the same target."""

    id: str
    origin: str  # peer id whose device key signed this event
    author: str  # display name at the time (shown in "who reacted"; never an identity)
    target: str  # id of the message this event is about
    hlc: str

    def base_dict(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "kind": kind, "origin": self.origin, "author": self.author,
                "target": self.target, "hlc": self.hlc}


@dataclass(frozen=True)
class Reaction(ConvEvent):
    emoji: str = ""
    on: bool = True  # False = this person took the reaction back


@dataclass(frozen=True)
class Edit(ConvEvent):
    text: str = ""


@dataclass(frozen=True)
class Delete(ConvEvent):
    """``target_seq`` binds the target's id to its (origin, seq) catch-up slot, and ``erases``
    lists the seqs of the author's own edits of it: stores keep those slots as redacted stubs
    (no text), which catch-up can hand on because this signed delete vouches for them."""

    target_seq: int = 0
    erases: tuple[int, ...] = ()


MAX_ERASES = 64  # edits one delete can erase; an author editing more often is rate-limited first


AnyEvent = Reaction | Edit | Delete


def event_to_dict(event: AnyEvent) -> dict[str, Any]:
    if isinstance(event, Reaction):
        return event.base_dict(KIND_REACTION) | {"emoji": event.emoji, "on": event.on}
    if isinstance(event, Edit):
        return event.base_dict(KIND_EDIT) | {"text": event.text}
    return event.base_dict(KIND_DELETE) | {"target_seq": event.target_seq,
                                           "erases": list(event.erases)}


def event_from_dict(data: object) -> AnyEvent:
    """Validate an untrusted mapping into a reaction, edit or delete (not yet authorised:
    see ``check_author`` and the reducer)."""
    if not isinstance(data, dict):
        raise ValidationError("Event must be an object.")
    kind = data.get("kind")
    if kind not in (KIND_REACTION, KIND_EDIT, KIND_DELETE):
        raise ValidationError("Unknown event kind.")
    base = {
        "id": validate_id(data.get("id"), "event id"),
        "origin": validate_id(data.get("origin"), "origin"),
        "author": validate_name(data.get("author")),
        "target": validate_id(data.get("target"), "target id"),
        "hlc": validate_hlc(data.get("hlc")),
    }
    if kind == KIND_REACTION:
        on = data.get("on", True)
        if not isinstance(on, bool):
            raise ValidationError("Reaction 'on' must be true or false.")
        return Reaction(**base, emoji=validate_emoji(data.get("emoji")), on=on)
    if kind == KIND_EDIT:
        raw = data.get("text")
        clean = validate_text(raw)
        if clean is None:
            raise ValidationError("An edit cannot empty a message: delete it instead.")
        if clean != raw:
            raise ValidationError("Invalid edit text.")
        return Edit(**base, text=clean)
    target_seq = data.get("target_seq", 0)
    if isinstance(target_seq, bool) or not isinstance(target_seq, int) or not (
        0 <= target_seq <= MAX_SEQ
    ):
        raise ValidationError("Invalid target sequence number.")
    erases = data.get("erases", [])
    if not isinstance(erases, list) or len(erases) > MAX_ERASES:
        raise ValidationError(f"A delete erases at most {MAX_ERASES} edits.")
    if any(isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SEQ for n in erases):
        raise ValidationError("Invalid erased sequence number.")
    return Delete(**base, target_seq=target_seq, erases=tuple(sorted(set(erases))))


def vouches_for(delete: Delete, stub_origin: str, stub_id: str, stub_seq: int) -> bool:
    """May a redacted stub (a catch-up slot without text or signature) fill (origin, seq)?

    Only when a verified delete by that same origin names it: the target itself (id and seq) or
    one of the author's edits it erased. An unsigned stub never takes a slot on its own."""
    if delete.origin != stub_origin or stub_seq <= 0:
        return False
    if stub_id == delete.target:
        return delete.target_seq == stub_seq
    return stub_seq in delete.erases


def check_author(original_origin: str, original_author: str, signer: str, author: str) -> None:
    """Only the person who wrote a message may edit or delete it.

    ``signer`` is the origin whose device key verified the event's signature (the mesh checks the
    signature; this is the rule). One origin can be a host with many people (each browser tab a
    session under its own name), so the name must match too; the host lets a session send events
    only under its own name, as it does for messages. Raises ``ValidationError`` with the
    sentence to send back."""
    if not original_origin or original_origin != signer or original_author != author:
        raise ValidationError(NOT_AUTHOR)


def may_modify(event: AnyEvent, original: Original) -> bool:
    """Reactions are anyone's; edits and deletes only the original author's."""
    if event.target != original.id:
        return False
    if isinstance(event, Reaction):
        return True
    return (bool(original.origin) and event.origin == original.origin
            and event.author == original.author)



CONV_CONTEXT = "fletchat-conv-v1"  # signing label of messages that carry conversation fields
READ_CONTEXT = "fletchat-read-v1"
_EXT_FIELDS = {
    "chat": ("reply",),
    KIND_REACTION: ("target", "emoji", "on"),
    KIND_EDIT: ("target",),
    KIND_DELETE: ("target", "target_seq", "erases"),
}


def _canonical(items: list[Any]) -> bytes:
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode("utf-8")


def conv_signing_bytes(obj: dict[str, Any]) -> bytes:
    """What the origin signs for a message object of a conversation kind (or a chat message with
    ``reply``): the version-1 fields in their order, then an object of the kind's extra fields
    (keys sorted). A plain chat message keeps the version-1 bytes (protocol.md), so older peers
    still verify it. ``obj`` must already be validated."""
    kind = obj["kind"]
    ext = {k: obj[k] for k in _EXT_FIELDS.get(kind, ()) if k in obj}
    return _canonical([
        CONV_CONTEXT, obj["id"], kind, obj["author"], obj["origin"], obj.get("text", ""),
        float(obj["ts"]), obj.get("channel", "general"), obj.get("hlc", ""), obj.get("seq", 0),
        ext,
    ])


def read_signing_bytes(origin: str, name: str, channel: str, upto: str, ts: float) -> bytes:
    """What a reader's device signs for a ``read`` frame (relays cannot forge "seen by")."""
    return _canonical([READ_CONTEXT, origin, name, channel, upto, float(ts)])
