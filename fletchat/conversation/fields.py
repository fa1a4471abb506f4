"""The conversation fields a ``Message`` may carry (``Message.conv``), on the wire and signed.

One frozen value per message, ``None`` for ordinary messages, so the hot path of plain chat pays
one attribute test. docs/protocol.md ("Conversation") is the spec:

- ``chat`` + ``reply``: the parent's id, author and a one-line quote (``kinds.ReplyRef``);
- ``reaction``: ``target``, ``emoji``, ``on``;  ``edit``: ``target`` (the new text is ``text``);
- ``delete``: ``target``, ``target_seq``, ``erases``;  ``rename``: ``was`` (the old name);
- any kind + ``redacted``: a *stub*, a deleted message's slot without its text, carrying the
  signed delete that vouches for it (catch-up hands deleted slots on this way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model import MAX_SEQ, ValidationError, validate_id, validate_name
from .kinds import MAX_ERASES, ReplyRef, validate_emoji

if TYPE_CHECKING:
    from ..model import Message

KIND_CHAT, KIND_REACTION, KIND_EDIT, KIND_DELETE, KIND_RENAME = (
    "chat", "reaction", "edit", "delete", "rename")


@dataclass(frozen=True)
class Redaction:
    """What vouches for a stub: the author's delete (a full message object) and its signature."""

    delete: Message
    sig: str = ""


@dataclass(frozen=True)
class ConvFields:
    reply: ReplyRef | None = None
    target: str = ""
    emoji: str = ""
    on: bool = True
    target_seq: int = 0
    erases: tuple[int, ...] = ()
    was: str = ""  # rename: the name before
    redacted: Redaction | None = None  # a stub: the text was erased by this delete
    redacted_by: str = ""  # store side: id of the delete that erased this row's text

    # ---- wire ----
    def signed(self, kind: str) -> dict[str, Any]:
        """The kind's extra fields, keys sorted: appended to the signing bytes (protocol.md)."""
        if kind == KIND_CHAT:
            return {"reply": self.reply.to_dict()} if self.reply is not None else {}
        if kind == KIND_REACTION:
            return {"emoji": self.emoji, "on": self.on, "target": self.target}
        if kind == KIND_EDIT:
            return {"target": self.target}
        if kind == KIND_DELETE:
            return {"erases": list(self.erases), "target": self.target,
                    "target_seq": self.target_seq}
        if kind == KIND_RENAME:
            return {"was": self.was}
        return {}

    def to_wire(self, kind: str) -> dict[str, Any]:
        out = self.signed(kind)
        if self.redacted is not None:
            proof = self.redacted.delete.to_dict()
            if self.redacted.sig:
                proof["sig"] = self.redacted.sig
            out["redacted"] = proof
        return out

    @classmethod
    def from_wire(cls, data: dict[str, Any], kind: str) -> ConvFields:
        """Validate the conversation fields of an untrusted message object of ``kind``."""
        redacted = _redaction(data.get("redacted")) if "redacted" in data else None
        if kind == KIND_CHAT:
            raw = data.get("reply")
            reply = ReplyRef.from_dict(raw) if raw is not None else None
            return cls(reply=reply, redacted=redacted)
        if kind == KIND_RENAME:
            return cls(was=validate_name(data.get("was")))
        target = validate_id(data.get("target"), "target id")
        if kind == KIND_REACTION:
            on = data.get("on", True)
            if not isinstance(on, bool):
                raise ValidationError("Reaction 'on' must be true or false.")
            return cls(target=target, emoji=validate_emoji(data.get("emoji")), on=on)
        if kind == KIND_EDIT:
            return cls(target=target, redacted=redacted)
        if kind == KIND_DELETE:
            return cls(target=target, target_seq=_seq(data.get("target_seq", 0), 0),
                       erases=_erases(data.get("erases", [])))
        raise ValidationError("Unknown message kind.")


def _seq(raw: object, low: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= MAX_SEQ:
        raise ValidationError("Invalid target sequence number.")
    return raw


def _erases(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_ERASES:
        raise ValidationError(f"A delete erases at most {MAX_ERASES} edits.")
    return tuple(sorted({_seq(n, 1) for n in raw}))


def _redaction(raw: object) -> Redaction:
    from ..model import Message

    if not isinstance(raw, dict) or raw.get("kind") != KIND_DELETE or "redacted" in raw:
        raise ValidationError("A redacted message must carry the delete that erased it.")
    sig = raw.get("sig", "")
    if not isinstance(sig, str) or len(sig) > 100:
        raise ValidationError("Invalid signature of the redacting delete.")
    return Redaction(Message.from_dict(raw), sig)


def vouched(stub: Message) -> bool:
    """A stub may take its (origin, seq) slot only if its delete names it: same origin, and the
    stub is the target (id and seq) or one of the edits it erases (by seq, targeting it)."""
    proof = stub.conv.redacted if stub.conv is not None else None
    if proof is None or proof.delete.conv is None:
        return False
    d, dc = proof.delete, proof.delete.conv
    if (d.origin, d.author, d.channel) != (stub.origin, stub.author, stub.channel) or stub.seq <= 0:
        return False
    if stub.id == dc.target:
        return dc.target_seq == stub.seq
    return stub.kind == KIND_EDIT and stub.conv.target == dc.target and stub.seq in dc.erases
